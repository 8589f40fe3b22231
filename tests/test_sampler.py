"""Sampler: the llama.cpp chain (penalties -> top_k -> top_p -> min_p -> temperature) in numpy."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ggsight.engine.sampler import Sampler, SamplingParams

GEMMA3_VOCAB = 262144


def probs_to_logits(p, n_vocab=None):
    """Logits whose softmax is p (padded with -inf ids up to n_vocab)."""
    x = np.log(np.asarray(p, dtype=np.float64)).astype(np.float32)
    if n_vocab is not None:
        x = np.concatenate([x, np.full(n_vocab - len(p), -np.inf, np.float32)])
    return x


def draws(params, logits, n=4000, history=()):
    s = Sampler(params, len(logits))
    return np.array([s.sample(logits, history) for _ in range(n)])


def frequencies(tokens, n_vocab):
    return np.bincount(tokens, minlength=n_vocab) / len(tokens)


# --- greedy and determinism ----------------------------------------------------------------

@pytest.mark.parametrize("n_vocab", [7, 5000, GEMMA3_VOCAB])
def test_greedy_is_argmax(n_vocab):
    rng = np.random.default_rng(n_vocab)
    s = Sampler(SamplingParams(temperature=0.0), n_vocab)
    for _ in range(5):
        logits = rng.standard_normal(n_vocab).astype(np.float32)
        assert s.sample(logits) == int(np.argmax(logits))


def test_tiny_temperature_is_nearly_greedy():
    logits = np.array([1.0, 3.0, 2.9999], np.float32)
    assert set(draws(SamplingParams(temperature=1e-300, top_k=0, top_p=1.0, seed=0), logits, 50)) == {1}


def test_top_k_1_is_greedy():
    rng = np.random.default_rng(1)
    s = Sampler(SamplingParams(temperature=1.5, top_k=1, top_p=1.0, seed=3), 1000)
    for _ in range(20):
        logits = rng.standard_normal(1000).astype(np.float32)
        assert s.sample(logits) == int(np.argmax(logits))


@pytest.mark.parametrize("opts", [{}, {"top_k": 0}, {"top_k": 0, "top_p": 1.0},
                                  {"top_k": 0, "top_p": 1.0, "min_p": 0.05}])
def test_same_seed_same_tokens(opts):
    rng = np.random.default_rng(2)
    rows = [rng.standard_normal(GEMMA3_VOCAB).astype(np.float32) * 2 for _ in range(3)]
    params = SamplingParams(seed=1234, temperature=1.0, **opts)
    a, b = Sampler(params, GEMMA3_VOCAB), Sampler(params, GEMMA3_VOCAB)
    ta = [a.sample(r) for r in rows for _ in range(10)]
    assert ta == [b.sample(r) for r in rows for _ in range(10)]
    a.reset()
    assert ta == [a.sample(r) for r in rows for _ in range(10)]
    other = Sampler(SamplingParams(seed=99, temperature=1.0, **opts), GEMMA3_VOCAB)
    assert ta != [other.sample(r) for r in rows for _ in range(10)]


def test_no_seed_is_random():
    logits = np.zeros(1000, np.float32)
    params = SamplingParams(top_k=0, top_p=1.0)
    assert [Sampler(params, 1000).sample(logits) for _ in range(8)] != [Sampler(params, 1000).sample(logits)] * 8


# --- distributions -------------------------------------------------------------------------

P = [0.5, 0.3, 0.15, 0.05]


def test_untruncated_draws_follow_softmax_and_temperature():
    logits = probs_to_logits(P)
    f = frequencies(draws(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=0), logits, 10000), 4)
    np.testing.assert_allclose(f, P, atol=0.02)
    sharp = np.array(P) ** 2 / np.sum(np.array(P) ** 2)             # temperature 0.5 squares p
    f = frequencies(draws(SamplingParams(temperature=0.5, top_k=0, top_p=1.0, seed=0), logits, 10000), 4)
    np.testing.assert_allclose(f, sharp, atol=0.02)


def test_large_vocab_draws_span_blocks():
    # Survivors far apart in a 262144 vocabulary, the rest -inf: exercises the blockwise CDF.
    ids, p = [5, 70000, GEMMA3_VOCAB - 1], [0.2, 0.3, 0.5]
    logits = np.full(GEMMA3_VOCAB, -np.inf, np.float32)
    logits[ids] = np.log(p)
    t = draws(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=5), logits, 1500)
    assert set(t) == set(ids)
    np.testing.assert_allclose([np.mean(t == i) for i in ids], p, atol=0.04)


@pytest.mark.parametrize("top_k", [0, 3, 40])
def test_top_p_restricts_support(top_k):
    logits = probs_to_logits(P)
    # cumulative 0.5, 0.8 (>= 0.7: keep two) within the (renormalised) top-k distribution
    p = P[:3] / np.sum(P[:3]) if top_k == 3 else np.array(P)
    keep = int(np.searchsorted(np.cumsum(p), 0.7)) + 1
    t = draws(SamplingParams(temperature=1.0, top_k=top_k, top_p=0.7, seed=7), logits, 4000)
    assert set(t) == set(range(keep))
    np.testing.assert_allclose(np.mean(t == 0), p[0] / p[:keep].sum(), atol=0.03)


def test_top_p_without_top_k_on_a_flat_distribution():
    # Distinct, slowly falling logits: the 0.9 mass needs far more than the first 512 tokens,
    # so the sampler takes its value-sort path; the kept ids must be exactly a sorted prefix.
    n = 20000
    logits = np.linspace(0.0, -3.0, n, dtype=np.float32)
    w = np.exp(logits.astype(np.float64))
    keep = int(np.searchsorted(np.cumsum(w) / w.sum(), 0.9)) + 1
    t = draws(SamplingParams(temperature=1.0, top_k=0, top_p=0.9, seed=11), logits, 1000)
    assert t.max() < keep and keep > 512
    assert t.max() > 0.95 * keep                                     # the support reaches the cut


@pytest.mark.parametrize("top_k", [0, 40])
def test_min_p(top_k):
    logits = probs_to_logits([0.6, 0.3, 0.06, 0.04])
    t = draws(SamplingParams(temperature=1.0, top_k=top_k, top_p=1.0, min_p=0.15, seed=3), logits, 3000)
    assert set(t) == {0, 1}                                         # p >= 0.15 * 0.6 = 0.09
    t = draws(SamplingParams(temperature=1.0, top_k=top_k, top_p=1.0, min_p=0.05, seed=3), logits, 3000)
    assert set(t) == {0, 1, 2, 3}                                   # p >= 0.03


# --- penalties -----------------------------------------------------------------------------

def greedy(logits, history, **opts):
    return Sampler(SamplingParams(temperature=0.0, **opts), len(logits)).sample(logits, history)


def test_repeat_penalty_changes_the_argmax():
    logits = np.array([2.0, 1.9, -5.0, -5.0], np.float32)
    assert greedy(logits, [0]) == 0
    assert greedy(logits, [0], repeat_penalty=1.1) == 1             # 2.0 / 1.1 < 1.9
    neg = np.array([-1.0, -1.05, -9.0], np.float32)
    assert greedy(neg, [0], repeat_penalty=1.1) == 1                 # -1.0 * 1.1 < -1.05
    # only the last repeat_last_n tokens count; 0 disables; -1 is the whole history
    assert greedy(logits, [0, 3, 3], repeat_penalty=1.1, repeat_last_n=2) == 0
    assert greedy(logits, [0], repeat_penalty=1.1, repeat_last_n=0) == 0
    assert greedy(logits, [0] + [3] * 100, repeat_penalty=1.1, repeat_last_n=-1) == 1
    assert greedy(logits, np.array([0]), repeat_penalty=1.1) == 1   # numpy history works too


def test_presence_and_frequency_penalties():
    logits = np.array([3.0, 2.5, 2.0], np.float32)
    history = [0, 0, 1]
    s = Sampler(SamplingParams(presence_penalty=0.3, frequency_penalty=0.4), 3)
    # logit -= presence * (count > 0) + frequency * count
    np.testing.assert_allclose(s._penalize(logits, history), [3.0 - 0.3 - 0.8, 2.5 - 0.3 - 0.4, 2.0], rtol=1e-6)
    assert greedy(logits, history, presence_penalty=0.3, frequency_penalty=0.4) == 2
    assert greedy(logits, history, presence_penalty=1.2) == 2        # 1.8, 1.3, 2.0
    assert greedy(logits, history, frequency_penalty=0.6) == 2       # 1.8, 1.9, 2.0
    assert greedy(logits, history, frequency_penalty=0.2) == 0       # 2.6, 2.3, 2.0
    np.testing.assert_array_equal(logits, [3.0, 2.5, 2.0])           # the caller's row is untouched


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"min_p": -0.1}, "min_p"),
    ({"min_p": 2.0}, "min_p"),
    ({"repeat_penalty": 0.0}, "repeat_penalty"),
    ({"repeat_last_n": -2}, "repeat_last_n"),
    ({"top_k": 4.5}, "top_k"),
    ({"top_k": "40"}, "top_k"),
    ({"seed": -5}, "seed"),
    ({"presence_penalty": float("inf")}, "presence_penalty"),
])
def test_validation_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams(**bad).validate()
    with pytest.raises(ValueError):
        Sampler(SamplingParams(**bad), 10)


def test_from_options():
    p = SamplingParams.from_options({"temperature": 0.2, "top_k": 20.0, "seed": -1, "min_p": None})
    assert p == SamplingParams(temperature=0.2, top_k=20, seed=None)
    assert SamplingParams.from_options({"seed": 7}).seed == 7
    base = SamplingParams(temperature=0.3, top_p=0.5)                # e.g. a Modelfile's parameters
    assert SamplingParams.from_options({"top_p": 0.8}, base=base) == SamplingParams(temperature=0.3, top_p=0.8)
    assert SamplingParams.from_options(None) == SamplingParams()
    assert SamplingParams.OPTION_NAMES == {"temperature", "top_k", "top_p", "min_p", "seed", "repeat_penalty",
                                           "repeat_last_n", "presence_penalty", "frequency_penalty"}
    with pytest.raises(ValueError, match=r"unknown sampling option 'num_ctx'; valid options are: .*top_k"):
        SamplingParams.from_options({"num_ctx": 4096})
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams.from_options({"top_p": 2})


def test_defaults_are_ollamas():
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.seed) == (0.8, 40, 0.9, 0.0, None)
    assert not p.greedy and SamplingParams(temperature=0).greedy


def test_bad_inputs():
    s = Sampler(SamplingParams(), 10)
    with pytest.raises(ValueError, match="shape"):
        s.sample(np.zeros(11, np.float32))
    one_nan = np.arange(10, dtype=np.float32)
    one_nan[3] = np.nan
    for opts in ({}, {"temperature": 0.0}, {"top_k": 0}, {"top_k": 0, "top_p": 1.0, "min_p": 0.1}):
        with pytest.raises(ValueError, match="NaN"):
            Sampler(SamplingParams(**opts), 10).sample(one_nan)
    with pytest.raises(ValueError, match="NaN"):
        s.sample(np.full(10, -np.inf, np.float32))
    with pytest.raises(ValueError, match="outside"):
        Sampler(SamplingParams(repeat_penalty=1.1), 10).sample(np.zeros(10, np.float32), [10])


# --- speed (printed, never asserted: see DESIGN.md §8) -------------------------------------

def test_print_sampler_timing():
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(GEMMA3_VOCAB) * 3).astype(np.float32)
    history = list(rng.integers(0, GEMMA3_VOCAB, 512))
    cases = {
        "defaults (k40 p0.9 T0.8)": SamplingParams(seed=0),
        "defaults + penalties": SamplingParams(seed=0, repeat_penalty=1.1, presence_penalty=0.5,
                                               frequency_penalty=0.5),
        "greedy": SamplingParams(temperature=0.0),
        "top_k off, p0.9": SamplingParams(seed=0, top_k=0),
        "no truncation": SamplingParams(seed=0, top_k=0, top_p=1.0),
        "top_k off, min_p 0.05": SamplingParams(seed=0, top_k=0, top_p=1.0, min_p=0.05),
    }
    print(f"\nsampler at n_vocab={GEMMA3_VOCAB} (N(0,3) logits, 512-token history):")
    for name, params in cases.items():
        s = Sampler(params, GEMMA3_VOCAB)
        s.sample(logits, history)
        t0, n = time.perf_counter(), 50
        for _ in range(n):
            s.sample(logits, history)
        print(f"  {name:28s} {(time.perf_counter() - t0) / n * 1e3:6.3f} ms/token")
