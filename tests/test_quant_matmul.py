"""Quantized weights: ggml's quantize/dequantize and mul_mat against an independent reference.

The reference dequantizer is the `gguf` PyPI package (`gguf.quants.dequantize`, numpy code
written apart from ggml's C), so a wrong block layout in ggml, the shim or the Python wrapper
shows up as a mismatch instead of agreeing with itself. Run with `-s` to print the errors.
"""
from __future__ import annotations

import numpy as np
import pytest

from ggsight.ggml import Backend, Context, DType, Scheduler, dequantize, quantize, row_bytes

gguf_quants = pytest.importorskip("gguf.quants")  # the `test` extra
GGMLQuantizationType = pytest.importorskip("gguf").GGMLQuantizationType

N_OUT, N_IN = 64, 256  # W (N_OUT, N_IN) is ggml [256, 64]: one 256-block per row for the k-quants

# dtype: (weight bound, matmul bound), both as max|error| / max|reference|.
#  weight bound: dequantize(quantize(W)) against W ~ N(0, 1), i.e. the format's resolution
#  (f16 and bf16 at their half-ulp limit, the block formats ~1.5x what the seeds below give).
#  matmul bound: ggml's mul_mat against float64 X @ dequantized(W).T. The CPU rounds the
#  activations to the weight's vec_dot type (f16, bf16, or Q8_0 / Q8_K blocks), which is
#  nearly all of this error; the bounds are ~2x the worst error measured here.
TYPES = {
    DType.F16: (5e-4, 5e-4),
    DType.BF16: (4e-3, 3e-3),
    DType.Q8_0: (6e-3, 8e-3),
    DType.Q4_0: (0.15, 1.5e-2),
    DType.Q4_1: (0.1, 1.5e-2),
    DType.Q5_0: (0.07, 1.5e-2),
    DType.Q5_1: (0.04, 1.5e-2),
    DType.Q2_K: (0.4, 1.5e-2),
    DType.Q3_K: (0.2, 1.5e-2),
    DType.Q4_K: (0.08, 1.5e-2),
    DType.Q5_K: (0.05, 1.5e-2),
    DType.Q6_K: (0.025, 1.5e-2),
    DType.IQ4_NL: (0.1, 1.5e-2),
    DType.IQ4_XS: (0.1, 1.5e-2),
    DType.MXFP4: (0.3, 1.5e-2),
}
REQUIRED = {DType.F16, DType.BF16, DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K}


def normalised_error(got, ref) -> float:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got - ref).max() / max(1e-6, np.abs(ref).max()))


def weights(dtype: DType) -> np.ndarray:
    return np.random.default_rng(1000 + int(dtype)).standard_normal((N_OUT, N_IN)).astype(np.float32)


def reference_dequantize(raw: np.ndarray, dtype: DType) -> np.ndarray:
    return gguf_quants.dequantize(raw, GGMLQuantizationType[dtype.name]).astype(np.float32)


@pytest.fixture(scope="session")
def report():
    """(check, dtype, error, bound) rows, printed when the session ends (visible with -s)."""
    rows: list = []
    yield rows
    print(f"\n\n{'check':22} {'type':7} {'error':>9} {'bound':>7}")
    for check, name, err, bound in rows:
        print(f"{check:22} {name:7} {err:9.2e} {bound:7.2g}{'' if err <= bound else '  FAIL'}")


@pytest.fixture(scope="module")
def sched():
    return Scheduler(Backend(n_threads=2))


def test_table_covers_the_common_gguf_types():
    assert REQUIRED <= set(TYPES)


@pytest.mark.parametrize("dtype", list(TYPES), ids=lambda d: d.name)
def test_dequantize_matches_gguf_package(dtype, report):
    w = weights(dtype)
    raw = quantize(w, dtype)
    assert raw.dtype == np.uint8 and raw.shape == (N_OUT, row_bytes(dtype, N_IN))
    ours, theirs = dequantize(raw, dtype, N_IN), reference_dequantize(raw, dtype)
    assert ours.shape == theirs.shape == w.shape
    # Both decode the same bits with f32 arithmetic: any difference is a layout bug.
    np.testing.assert_array_equal(ours, theirs)
    err, bound = normalised_error(theirs, w), TYPES[dtype][0]
    report.append(("dequant(quant(W)) ~ W", dtype.name, err, bound))
    assert err <= bound, f"{dtype.name}: dequantized weights are {err:.3g} from the originals"


@pytest.mark.parametrize("n_tokens", [1, 7], ids=lambda n: f"tokens{n}")  # gemv and gemm kernels
@pytest.mark.parametrize("dtype", list(TYPES), ids=lambda d: d.name)
def test_quantized_mul_mat(dtype, n_tokens, sched, report):
    raw = quantize(weights(dtype), dtype)
    x = np.random.default_rng(n_tokens).uniform(-1, 1, (n_tokens, N_IN)).astype(np.float32)
    ctx = Context(16)
    w = ctx.input("w", (N_IN, N_OUT), dtype)
    xt = ctx.input("x", (N_IN, n_tokens))
    # write() takes the raw rows as uint8 for quantized types (and bf16, which numpy lacks);
    # f16 has a numpy dtype, so its bytes go in as a float16 view rather than converted values.
    got, = sched.run(ctx.graph(w.mul_mat(xt)), {w: raw.view(np.float16) if dtype == DType.F16 else raw, xt: x})
    ref = x.astype(np.float64) @ reference_dequantize(raw, dtype).astype(np.float64).T  # (n_tokens, N_OUT)
    err, bound = normalised_error(np.reshape(got, ref.shape), ref), TYPES[dtype][1]
    report.append((f"mul_mat, {n_tokens} token{'s' * (n_tokens > 1)}", dtype.name, err, bound))
    assert err <= bound, f"{dtype.name} x {n_tokens} tokens: normalised error {err:.3g} > {bound:g}"


def test_weight_tensor_roundtrip_keeps_bytes(sched):
    """Raw rows written into a Q4_K tensor read back unchanged (read returns uint8 rows)."""
    raw = quantize(weights(DType.Q4_K), DType.Q4_K)
    ctx = Context(8)
    w = ctx.input("w", (N_IN, N_OUT), DType.Q4_K)
    got, = sched.run(ctx.graph(w.cont()), {w: raw})
    np.testing.assert_array_equal(got, raw)
