"""The shim's bf16 AMX kernels (matmul, unmasked attention) against numpy, and the tile layout."""
import math

import numpy as np
import pytest

from ggsight.errors import GGSightError
from ggsight.ggml import Backend, Buffer, Context, DType, Scheduler
from ggsight.ggml.tiles import TiledMatrix, amx_bf16_usable, attention_bf16_tiles, pack_bf16_tiles, to_bf16_bits

needs_amx = pytest.mark.skipif(not amx_bf16_usable(), reason="this CPU (or build) has no AMX-BF16")


def as_bf16(a: np.ndarray) -> np.ndarray:
    """The float32 values a bf16 rounding keeps."""
    return (to_bf16_bits(a).astype(np.uint32) << 16).view(np.float32)


def test_bf16_rounding_is_nearest_even():
    # ties go to the even mantissa: 1 + 2^-8 down to 1, 1 + 3 * 2^-8 up to 1 + 2^-6
    x = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -2.5, 1.0 + 2 ** -7 + 2 ** -9], np.float32)
    assert as_bf16(x).tolist() == [1.0, 1.0, 1.0 + 2 ** -6, -2.5, 1.0 + 2 ** -7]
    assert to_bf16_bits(np.array([1.0, -2.5], np.float32)).tolist() == [0x3F80, 0xC020]


def test_tile_layout_places_pairs_as_amx_reads_them():
    n_out, k = 40, 70                  # both padded: 64 x 96
    w = np.arange(n_out * k, dtype=np.float32).reshape(n_out, k) % 251
    tiles = pack_bf16_tiles(w)
    assert tiles.size == 64 * 96
    bits = to_bf16_bits(w)
    k_runs = 96 // 32
    for out in (0, 17, 39):
        for i in (0, 1, 33, 69):
            blk, n, run, p, e = out // 16, out % 16, i // 32, (i % 32) // 2, i % 2
            assert tiles[(blk * k_runs + run) * 512 + p * 32 + n * 2 + e] == bits[out, i]
    # padding is zero
    assert tiles[(2 * k_runs + 2) * 512 + 15 * 32 + 15 * 2 + 1] == 0


def _weight(values: np.ndarray):
    ctx = Context(2, frozen=True)
    w = ctx.new_tensor(values.shape[::-1], DType.F32, "w")
    buf = Buffer.for_context(ctx, 0)
    w.write(values)
    return w, buf


@needs_amx
@pytest.mark.parametrize("n_out,k,n_tok", [(64, 64, 32), (40, 70, 13), (4304 // 16, 1152 // 8, 300), (16, 32, 1)])
def test_tiled_matmul_equals_bf16_products(n_out, k, n_tok):
    rng = np.random.default_rng(n_out + k)
    wv = rng.normal(0, 1, (n_out, k)).astype(np.float32)
    xv = rng.normal(0, 1, (n_tok, k)).astype(np.float32)
    w, _buf = _weight(wv)
    tiled = TiledMatrix(w)
    ctx = Context(8)
    x = ctx.input("x", (k, n_tok))
    y = tiled.mul_mat(x)
    assert y.ne[:2] == (n_out, n_tok)
    out, = Scheduler(Backend(n_threads=2)).run(ctx.graph(y), {x: xv})
    ref = as_bf16(xv).astype(np.float64) @ as_bf16(wv).astype(np.float64).T
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-6   # only f32 summation order differs


@needs_amx
def test_tiled_matmul_keeps_extra_dims():
    rng = np.random.default_rng(1)
    wv = rng.normal(0, 1, (48, 64)).astype(np.float32)
    xv = rng.normal(0, 1, (3, 5, 64)).astype(np.float32)
    w, _buf = _weight(wv)
    ctx = Context(8)
    x = ctx.input("x", (64, 5, 3))
    y = TiledMatrix(w).mul_mat(x)
    out, = Scheduler(Backend(n_threads=2)).run(ctx.graph(y), {x: xv})
    assert out.shape == (3, 5, 48)
    ref = as_bf16(xv) @ as_bf16(wv).T
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-6


def _attention_reference(q, k, v, scale):
    """q, k, v numpy [n_tok, n_head, hd] -> [n_tok, n_head * hd]"""
    q, k, v = (a.transpose(1, 0, 2).astype(np.float64) for a in (q, k, v))
    s = q @ k.transpose(0, 2, 1) * scale
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ v).transpose(1, 0, 2).reshape(q.shape[1], -1)


@needs_amx
@pytest.mark.parametrize("hd,n_head,n_tok", [(8, 2, 37), (72, 3, 100), (32, 1, 64), (16, 5, 1)])
def test_tiled_attention_matches_softmax_attention(hd, n_head, n_tok):
    rng = np.random.default_rng(hd * n_tok)
    q, k, v = (rng.normal(0, 1, (n_tok, n_head, hd)).astype(np.float32) for _ in range(3))
    ctx = Context(16)
    ts = [ctx.input(n, (hd, n_head, n_tok)) for n in "qkv"]
    out = attention_bf16_tiles(*ts, 1 / math.sqrt(hd))
    got, = Scheduler(Backend(n_threads=2)).run(ctx.graph(out), dict(zip(ts, (q, k, v))))
    exact = _attention_reference(q, k, v, 1 / math.sqrt(hd))
    rounded = _attention_reference(as_bf16(q), as_bf16(k), as_bf16(v), 1 / math.sqrt(hd))
    scale = np.abs(exact).max()
    assert np.abs(got - rounded).max() / scale < 1e-2    # what is left: bf16 softmax weights
    assert np.abs(got - exact).max() / scale < 2e-2


@needs_amx
def test_bad_operands_raise():
    w, _buf = _weight(np.ones((32, 32), np.float32))
    tiled = TiledMatrix(w)
    ctx = Context(16)
    x = ctx.input("x", (48, 4))                     # 48 inputs, the tiles hold 32
    with pytest.raises(GGSightError, match="packed weight"):
        tiled.mul_mat(x)
    xt = ctx.input("xt", (4, 32)).transpose()       # not contiguous
    with pytest.raises(GGSightError, match="contiguous"):
        tiled.mul_mat(xt)
    q = ctx.input("q", (8, 2, 10))
    k = ctx.input("k", (8, 2, 11))
    with pytest.raises(GGSightError, match="one shape"):
        attention_bf16_tiles(q, k, k, 1.0)


@pytest.mark.skipif(amx_bf16_usable(), reason="checks the refusal on machines without AMX")
def test_without_amx_the_kernels_refuse():
    ctx = Context(8)
    q = ctx.input("q", (8, 2, 10))
    with pytest.raises(GGSightError, match="AMX"):
        attention_bf16_tiles(q, q, q, 1.0)


# ---- tiles bound at load (what runs on machines without AMX too) ---------------------------
import gguf  # noqa: E402

import ggsight  # noqa: E402
import ggsight.ggml.tiles as tiles_mod  # noqa: E402
import ggsight.nn.tiles as nn_tiles  # noqa: E402
from ggsight.ggml import GGUFFile, load_weights  # noqa: E402
from ggsight.nn import attention  # noqa: E402
from pathlib import Path  # noqa: E402

CONF = Path(__file__).parent / "data" / "conformance"


def bf16_mmproj(src: Path, out: Path) -> Path:
    """The conformance mmproj with its matrices (2-D, not embedding tables) stored bf16."""
    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(out), "clip")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        kind = f.types[0]
        w.add_key_value(f.name, f.contents(), kind, f.types[1] if kind == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        data = np.asarray(t.data)
        if t.tensor_type == gguf.GGMLQuantizationType.F32 and data.ndim == 2 and "embd" not in t.name:
            # bytes [rows, 2 * cols]: the writer reads the shape back from them
            w.add_tensor(t.name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


class _FakeTileLib:
    """The shim's library with the tile matmul answered by ggml's matmul of the weight the tiles
    were packed from (so the binding and routing run, and check, where AMX does not exist)."""

    def __init__(self, lib, packed_from: dict):
        self._lib, self._packed_from, self.calls = lib, packed_from, []

    def gs_amx_bf16_usable(self):
        return 1

    def gs_mul_mat_bf16_tiles(self, ctx, tiles, x, n_out):
        weight = self._packed_from[tiles]
        assert weight.ne[1] == n_out
        self.calls.append(weight.name)
        return self._lib.gs_mul_mat(ctx, weight.ptr, x)

    def __getattr__(self, name):
        return getattr(self._lib, name)


@pytest.mark.parametrize("arch", ["gemma3", "qwen25vl", "llama4"])
def test_tiles_bound_at_load_carry_the_towers_matmuls_and_attention(arch, tmp_path, monkeypatch):
    """load() binds a bf16 mmproj's matrices to the tiles (as x16 is bound), and the tower's
    mul_mat / unmasked attention go there with no tile code in the model; estimate() counts the
    copies without making them; repack=False (and the untiled path) run ggml's ops unchanged."""
    mmproj = bf16_mmproj(CONF / arch / "mmproj.gguf", tmp_path / "mmproj-bf16.gguf")
    text = CONF / arch / "text.gguf"
    plain = ggsight.load(text, mmproj=mmproj, n_ctx=64, n_threads=2, repack=False)
    assert not plain.images.vision.binder.weights.tiles
    view = plain.images.largest_view() + np.float32(0.25)
    want = plain.images.embed(plain.sched, view)

    packed_from, real_init = {}, tiles_mod.TiledMatrix.__init__

    def init(self, weight, name=None):
        real_init(self, weight, name)
        packed_from[self.tensor.ptr] = weight
    fake = _FakeTileLib(tiles_mod.lib, packed_from)
    monkeypatch.setattr(tiles_mod.TiledMatrix, "__init__", init)
    monkeypatch.setattr(tiles_mod, "lib", fake)
    attended = []

    def tile_attention(q, k, v, scale):   # what the kernel computes, in ggml's ops (f16 K/V as untiled)
        attended.append(q.ne)
        return attention(q, k.permute(0, 2, 1, 3).cast(DType.F16), v.permute(0, 2, 1, 3).cast(DType.F16), None,
                         scale)
    monkeypatch.setattr(nn_tiles, "attention_bf16_tiles", tile_attention)

    m = ggsight.load(text, mmproj=mmproj, n_ctx=64, n_threads=2)
    w = m.images.vision.binder.weights
    gf = GGUFFile.open(mmproj)
    matrices = {t.name for t in gf.tensors if t.dtype == DType.BF16}
    assert set(w.tiles) == matrices and all(isinstance(w[n], tiles_mod.TiledTensor) for n in matrices)
    some = sorted(matrices)[0]
    np.testing.assert_array_equal(w[some].read(), load_weights(gf, repack=False)[some].read())  # read as stored
    assert w.tiles_nbytes == tiles_mod.planned_bytes(gf.tensors) > 0
    assert m.memory.weights == plain.memory.weights + w.tiles_nbytes
    assert ggsight.estimate(text, mmproj=mmproj, n_ctx=64).weights == m.memory.weights

    fake.calls.clear()   # the memory plan built the tower's graph too
    attended.clear()
    got = m.images.embed(m.sched, view)
    c = m.images.vision.config
    n_layer = c.n_layer
    assert fake.calls.count(f"v.blk.{n_layer - 1}.attn_q.weight") == 1 and len(fake.calls) >= 6 * n_layer
    unmasked = n_layer if arch != "qwen25vl" else len(c.full_layers)
    assert len(attended) == unmasked >= 1
    np.testing.assert_array_equal(got, want)   # the same ops, the same bits
