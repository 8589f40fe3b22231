"""The debug hook (engine/dump.py): load(dump=callable) and GGSIGHT_DUMP=<folder> hand over every
named tensor of each computed graph (no torch)."""
from pathlib import Path

import numpy as np

import ggsight
from ggsight.engine.dump import DumpScheduler, named
from ggsight.ggml import Backend, Context, GGUFFile

CONF = Path(__file__).parent / "data" / "conformance"
TEXT, MMPROJ = CONF / "gemma3" / "text.gguf", CONF / "gemma3" / "mmproj.gguf"


def collect():
    got: dict = {}
    return got, lambda name, array: got.setdefault(name, []).append(array.copy())


def test_named_intermediates_of_a_prompt():
    got, dump = collect()
    m = ggsight.load(TEXT, n_ctx=64, n_threads=2, dump=dump)
    ids, logits = m.evaluate("The capital of France is")
    c = m.net.config
    assert len(got["result_output"]) == 1                             # one graph: the prompt fits a batch
    np.testing.assert_array_equal(got["result_output"][0], logits)
    assert got["attn_norm-0"][0].shape == (len(ids), c.n_embd)       # numpy order: [n_tokens, n_embd]
    assert {f"attn_norm-{il}" for il in range(c.n_layer)} | {f"l_out-{il}" for il in range(c.n_layer)} <= set(got)
    assert not [n for n in got if not named(n)]                       # no ggml numbering, no "(view)"
    # the values are the graph's: the embedding row scaled, the final norm of the last layer's output
    table = GGUFFile.open(TEXT).tensor_numpy("token_embd.weight")
    np.testing.assert_allclose(got["inp_embd"][0], table[ids] * np.sqrt(c.n_embd), rtol=1e-6)
    x = got[f"l_out-{c.n_layer - 1}"][0]
    w = GGUFFile.open(TEXT).tensor_numpy("output_norm.weight")
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + c.norm_eps) * w
    np.testing.assert_allclose(got["result_norm"][0], ref, rtol=1e-4, atol=1e-5)
    # a named view (attn-N is a reshape of the fused attention) is read through its own copy
    assert got["attn-0"][0].shape == (len(ids), c.n_head * c.head_dim)
    # dumping leaves the numbers alone
    np.testing.assert_array_equal(ggsight.load(TEXT, n_ctx=64, n_threads=2).evaluate(ids)[1], logits)


def test_every_decode_step_and_the_vision_tower_are_dumped():
    got, dump = collect()
    m = ggsight.load(TEXT, mmproj=MMPROJ, n_ctx=128, n_threads=2, dump=dump)
    r = m.generate("hi", images=[np.zeros((32, 32, 3), np.uint8)], max_tokens=3, temperature=0, raw=True)
    assert len(got["result_output"]) == 1 + len(r.tokens) - (r.done_reason == "length")
    assert got["mm_out"][0].shape == (m.images.n_tokens, m.net.config.n_embd)
    assert f"v_out-{m.images.vision.config.n_layer - 1}" in got


def test_a_named_view_is_read_through_its_copy():
    # a transposed view is not contiguous: read as it stands it would be left out of the dump;
    # its copy (dump.py) holds the values, in the view's own order
    got, dump = collect()
    sched = DumpScheduler([Backend(n_threads=1)], dump)
    ctx = Context(64)
    x = ctx.input("x", (8, 4))
    y = x.scale(2.0).transpose().named("doubled_t")          # a view of the scale's result
    z = y.cont().scale(3.0)
    data = np.arange(32, dtype=np.float32).reshape(4, 8)
    out, = sched.run(ctx.graph(z), {x: data})
    assert not y.is_contiguous
    np.testing.assert_array_equal(got["doubled_t"][0], 2 * data.T)
    np.testing.assert_array_equal(out, 6 * data.T)


def test_ggsight_dump_writes_npy_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GGSIGHT_DUMP", str(tmp_path))
    m = ggsight.load(TEXT, n_ctx=64, n_threads=2)
    ids, logits = m.evaluate("hello")
    np.testing.assert_array_equal(np.load(tmp_path / "0000" / "result_output.npy"), logits)
    assert np.load(tmp_path / "0000" / "attn_norm-0.npy").shape == (len(ids), m.net.config.n_embd)
    m.generate(ids, max_tokens=1, temperature=0, raw=True)   # prefill reused, one more graph
    assert (tmp_path / "0001" / "result_output.npy").is_file()
