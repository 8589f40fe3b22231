"""Every ggml op against a numpy reference, in one table (STYLE.md point 8).

A case is: inputs (numpy-order generators; the numpy dtype picks the ggml type), a builder
(ctx, *input tensors) -> output tensor, a float64 numpy reference, and a threshold on the
normalised error max|got - ref| / max|ref|. Shapes in comments are numpy order; ggml's `ne`
is the reverse. Run with `-s` to print the measured errors at the end of the session.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from ggsight.errors import GgmlError, InvalidArgumentError
from ggsight.ggml import Backend, Buffer, Context, DType, Scheduler, ops

EXACT = 1e-6  # copies, layout, integer results, one f32 rounding per element
ACC = 1e-5    # f32 transcendental functions and f32 accumulations
LUT = 2e-3    # gelu / gelu_quick go through ggml's fp16 lookup table on CPU
HALF = 2e-3   # an f16 operand: weights, K/V, conv's im2col buffer (activations get rounded to f16)

_GGML = {np.dtype(np.float32): DType.F32, np.dtype(np.float16): DType.F16,
         np.dtype(np.int32): DType.I32, np.dtype(np.int64): DType.I64}


@dataclass
class Case:
    name: str
    inputs: list          # rng -> array, one per graph input
    build: Callable       # (ctx, *tensors) -> output tensor
    ref: Callable         # (*arrays) -> expected output
    tol: float
    canon: Callable | None = None  # puts an output with no defined order into one (top_k)


def C(name, inputs, build, ref, tol, canon=None):
    return pytest.param(Case(name, inputs, build, ref, tol, canon), id=name)


def call(op, *args, **kw):
    """Builder calling `op` as a method of the first input, with the other inputs, then args."""
    return lambda ctx, a, *rest: getattr(a, op)(*rest, *args, **kw)


# ---- input generators: rng -> array ---------------------------------------------------------
def U(*shape, lo=-1.0, hi=1.0, dtype=np.float32):
    return lambda rng: rng.uniform(lo, hi, shape).astype(dtype)


def H(*shape, lo=-1.0, hi=1.0):
    return U(*shape, lo=lo, hi=hi, dtype=np.float16)


def IDX(*shape, hi, dtype=np.int32):
    return lambda rng: rng.integers(0, hi, shape).astype(dtype)


def DISTINCT(k, hi, rows=None, dtype=np.int32):
    """k distinct indices below hi (per row): expert ids, cache slots (set_rows must not overlap)."""
    def make(rng):
        ids = [rng.permutation(hi)[:k] for _ in range(rows or 1)]
        return np.array(ids if rows else ids[0], dtype)
    return make


def CAUSAL(n_q, n_kv, alibi=False):
    """f16 mask: query i sees keys 0 .. n_kv - n_q + i; with alibi the visible entries hold -distance
    (a 0/-inf mask would hide the ALiBi slopes, which multiply the mask)."""
    dist = np.arange(n_q)[:, None] + n_kv - n_q - np.arange(n_kv)[None]
    mask = np.where(dist < 0, -np.inf, -dist if alibi else 0).astype(np.float16)
    return lambda rng: mask


# ---- references (float64) -------------------------------------------------------------------
f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
sigmoid = lambda x: 1 / (1 + np.exp(-f64(x)))  # noqa: E731
silu = lambda x: x * sigmoid(x)  # noqa: E731
gelu = lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * f64(x) ** 3)))  # noqa: E731
gelu_erf = lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(f64(x) / math.sqrt(2)))  # noqa: E731


def softmax(x, mask=None, scale=1.0, max_bias=0.0):
    """x (..., heads, rows, cols); mask (rows' >= rows, cols), times the ALiBi slope of each head."""
    s = f64(x) * scale
    if mask is not None:
        h, n2 = np.arange(x.shape[-3]), 2 ** int(math.log2(x.shape[-3]))
        m0, m1 = 2.0 ** (-max_bias / n2), 2.0 ** (-max_bias / 2 / n2)
        slope = np.where(h < n2, m0 ** (h + 1), m1 ** (2 * (h - n2) + 1)) if max_bias else np.ones(len(h))
        s = s + slope[:, None, None] * f64(mask)[: x.shape[-2]]
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(q, k, v, mask=None, scale=1.0, softcap=0.0):
    """q (H, n_q, d), k/v (H_kv, n_kv, d), query head h uses kv head h // (H / H_kv); -> (n_q, H, d_v)."""
    k, v = (np.repeat(f64(t), q.shape[0] // k.shape[0], 0) for t in (k, v))
    s = np.einsum("hqd,hkd->hqk", q, k) * scale
    if softcap:
        s = softcap * np.tanh(s / softcap)
    return np.einsum("hqk,hkd->qhd", softmax(s[None], mask)[0], v)


def rope(x, pos, n_dims, mode, sections=(), base=10000.0):
    """x (tokens, heads, dim). NORMAL rotates neighbours (2j, 2j+1), NEOX/MROPE halves (j, j + n/2);
    M-RoPE picks pair j's position stream by its sector (IMROPE interleaves t, h, w by sector % 3);
    VISION rotates (j, j + n_dims) and restarts the frequency index in each of its two sections."""
    n, j = x.shape[0], np.arange(n_dims // 2 if mode != ops.ROPE_VISION else n_dims)
    pos, freq = f64(pos).reshape(-1, n), j
    if mode == ops.ROPE_VISION:
        stream, freq = (j >= sections[0]).astype(int), np.where(j < sections[0], j, j - sections[0])
    elif mode == ops.ROPE_IMROPE:
        sec = j % sum(sections)
        stream = np.select([(sec % 3 == r) & (sec < 3 * sections[r]) for r in (1, 2, 0)], [1, 2, 0], 3)
    else:
        stream = np.searchsorted(np.cumsum(sections), j % sum(sections), "right") if sections else 0 * j
    theta = pos[stream].T * base ** (-2.0 * freq / n_dims)  # (tokens, pairs)
    i0, i1 = (2 * j, 2 * j + 1) if mode == ops.ROPE_NORMAL else (j, j + len(j))
    out, c, s = f64(x).copy(), np.cos(theta)[:, None], np.sin(theta)[:, None]
    out[..., i0], out[..., i1] = x[..., i0] * c - x[..., i1] * s, x[..., i0] * s + x[..., i1] * c
    return out


def patches(x, kh, kw, s1, s0, p1, p0, d1=1, d0=1, fill=0.0):
    """x (..., H, W) -> windows (..., OH, OW, KH, KW) of x padded with `fill`."""
    xp = np.pad(f64(x), [(0, 0)] * (x.ndim - 2) + [(p1, p1), (p0, p0)], constant_values=fill)
    oh, ow = (xp.shape[-2] - d1 * (kh - 1) - 1) // s1 + 1, (xp.shape[-1] - d0 * (kw - 1) - 1) // s0 + 1
    ih = (np.arange(oh) * s1)[:, None] + np.arange(kh) * d1
    iw = (np.arange(ow) * s0)[:, None] + np.arange(kw) * d0
    return xp[..., ih[:, None, :, None], iw[None, :, None, :]]


def im2col(k, x, s0, s1, p0, p1):  # -> (N, OH, OW, IC*KH*KW), inner order ic, kh, kw
    p = patches(x, k.shape[-2], k.shape[-1], s1, s0, p1, p0)
    return p.transpose(0, 2, 3, 1, 4, 5).reshape(*p.shape[:1], *p.shape[2:4], -1)


def conv2d(k, x, s0, s1, p0, p1, d0=1, d1=1):  # k (OC, IC, KH, KW), x (N, IC, H, W) -> (N, OC, OH, OW)
    return np.einsum("ncyxij,ocij->noyx", patches(x, *k.shape[2:], s1, s0, p1, p0, d1, d0), f64(k))


def pool2d(x, op, k, s, p):  # ggml: max skips the padding, avg counts it (divides by k*k)
    w = patches(x, k, k, s, s, p, p, fill=-np.inf if op == ops.POOL_MAX else 0.0)
    return w.max((-1, -2)) if op == ops.POOL_MAX else w.mean((-1, -2))


def pool1d(x, op, k, s, p):  # ggml: max skips the padding, avg divides by the in-range count
    win = lambda v, fill=0.0: patches(v[..., None, :], 1, k, 1, s, 0, p, fill=fill)[..., 0, :, 0, :]  # noqa: E731
    return win(x, -np.inf).max(-1) if op == ops.POOL_MAX else win(x).sum(-1) / win(np.ones_like(x)).sum(-1)


def interp_matrix(n_in, n_out, mode):
    """(n_out, n_in) weights along one axis: half-pixel centres, edges clamped, like ggml."""
    sf, m = np.float32(n_out) / np.float32(n_in), np.zeros((n_out, n_in))
    for i in range(n_out):
        x = (i + 0.5) / float(sf) - 0.5
        x0 = math.floor(x)
        if mode == ops.SCALE_NEAREST:
            m[i, int(np.float32(i) / sf)] = 1
        elif mode == ops.SCALE_BILINEAR:
            lo, hi = min(max(x0, 0), n_in - 1), min(max(x0 + 1, 0), n_in - 1)
            dx = min(max(x - lo, 0.0), 1.0)
            m[i, lo] += 1 - dx
            m[i, hi] += dx
        else:  # bicubic convolution with a = -0.75, like PyTorch
            a, d = -0.75, x - x0
            w1 = lambda t: ((a + 2) * t - (a + 3)) * t * t + 1  # noqa: E731
            w2 = lambda t: ((a * t - 5 * a) * t + 8 * a) * t - 4 * a  # noqa: E731
            for off, w in zip((-1, 0, 1, 2), (w2(d + 1), w1(d), w1(1 - d), w2(2 - d))):
                m[i, min(max(x0 + off, 0), n_in - 1)] += w
    return m


def interpolate(x, shape, mode):  # x (N, C, H, W) -> shape; the 2-D modes act on H and W only
    my, mx = interp_matrix(x.shape[2], shape[2], mode), interp_matrix(x.shape[3], shape[3], mode)
    return np.einsum("yi,ncij,xj->ncyx", my, f64(x), mx)


def win_part(x, w):  # x (H, W, C) -> (windows, w, w, C), zero padded, window index py*npx + px
    xp = np.pad(x, ((0, -x.shape[0] % w), (0, -x.shape[1] % w), (0, 0)))
    npy, npx = xp.shape[0] // w, xp.shape[1] // w
    return xp.reshape(npy, w, npx, w, -1).transpose(0, 2, 1, 3, 4).reshape(npy * npx, w, w, -1)


def win_unpart(win, h, wd, w):
    full = win.reshape(-1, -(-wd // w), w, w, win.shape[-1]).transpose(0, 2, 1, 3, 4)
    return full.reshape(full.shape[0] * w, full.shape[2] * w, -1)[:h, :wd]


def set_rows(dst, src, rows):
    out = dst.copy()
    out[rows] = src.astype(dst.dtype)
    return out


def mul_mat_id(experts, b, ids):  # token t's e-th expert ids[t, e] takes b row e % n_b
    return np.stack([[f64(experts[ids[t, e]]) @ b[t, e % b.shape[1]] for e in range(ids.shape[1])]
                     for t in range(ids.shape[0])])


def group_norm(x, g, eps):  # x (N, C, H, W): statistics over each group of C/g channels
    y = f64(x).reshape(x.shape[0], g, -1)
    return ((y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + eps)).reshape(x.shape)


def diag_mask(x, n_past):
    return np.where(np.arange(x.shape[-1]) > np.arange(x.shape[-2])[:, None] + n_past, -np.inf, f64(x))


def np_permute(x, *axes):  # ggml: source dim i goes to axes[i]; numpy axes are reversed dims
    n = x.ndim
    return x.transpose([n - 1 - axes.index(n - 1 - j) for j in range(n)])


_UNARY = {  # op: (reference, input range, threshold)
    "sqr": (np.square, (-3, 3), EXACT), "sqrt": (np.sqrt, (0.01, 4), ACC), "log": (np.log, (0.01, 4), ACC),
    "exp": (np.exp, (-5, 5), ACC), "sin": (np.sin, (-6, 6), ACC), "cos": (np.cos, (-6, 6), ACC),
    "abs": (np.abs, (-1, 1), EXACT), "neg": (np.negative, (-1, 1), EXACT), "tanh": (np.tanh, (-4, 4), ACC),
    "sigmoid": (sigmoid, (-8, 8), ACC), "relu": (lambda x: np.maximum(x, 0), (-1, 1), EXACT),
    "gelu": (gelu, (-12, 12), LUT), "gelu_erf": (gelu_erf, (-5, 5), ACC),  # |x| > 10: ggml's gelu shortcut
    "gelu_quick": (lambda x: x * sigmoid(1.702 * f64(x)), (-5, 5), LUT), "silu": (silu, (-8, 8), ACC),
    "softplus": (lambda x: np.logaddexp(0, f64(x)), (-30, 30), ACC),  # x > 20: ggml returns x
}
_GLU = {"swiglu_split": (silu, ACC), "geglu_split": (gelu, LUT), "geglu_erf_split": (gelu_erf, ACC)}
_INTERP = [("nearest", ops.SCALE_NEAREST, (1, 2, 6, 8)), ("bilinear_up", ops.SCALE_BILINEAR, (1, 2, 7, 10)),
           ("bilinear_down", ops.SCALE_BILINEAR, (1, 2, 2, 3)), ("bicubic", ops.SCALE_BICUBIC, (1, 2, 5, 7))]

CASES = [
    # elementwise; b broadcasts over a by repetition
    C("add", [U(2, 3, 8), U(2, 3, 8)], call("add"), np.add, EXACT),
    C("add_bcast_row", [U(2, 3, 8), U(1, 1, 8)], call("add"), np.add, EXACT),
    C("add_bcast_dim2", [U(4, 3, 8), U(1, 3, 8)], lambda c, a, b: a + b, np.add, EXACT),
    C("add_permuted_view", [U(3, 2, 8), U(2, 3, 8)], lambda c, a, b: a.permute(0, 2, 1, 3).add(b),
      lambda a, b: a.transpose(1, 0, 2) + b, EXACT),  # rows stay contiguous: ggml's CPU add asserts that
    C("sub", [U(3, 8), U(3, 8)], lambda c, a, b: a - b, np.subtract, EXACT),
    C("mul", [U(3, 8), U(3, 8)], call("mul"), np.multiply, EXACT),
    C("mul_bcast_col", [U(3, 4, 8), U(3, 4, 1)], lambda c, a, b: a * b, np.multiply, EXACT),
    C("mul_bcast_4d", [U(2, 3, 4, 8), U(2, 1, 4, 1)], call("mul"), np.multiply, EXACT),
    C("div", [U(3, 8), U(3, 8, lo=0.5, hi=2)], lambda c, a, b: a / b, lambda a, b: f64(a) / b, EXACT),
    C("add_id", [U(4, 2, 8), U(3, 8), IDX(4, 2, hi=3)], call("add_id"), lambda a, b, i: a + b[i], EXACT),
    C("scale", [U(3, 8)], call("scale", 0.37), lambda a: f64(a) * np.float32(0.37), EXACT),
    C("scale_bias", [U(3, 8)], call("scale", 0.5, bias=-0.25), lambda a: a * 0.5 - 0.25, EXACT),
    C("clamp", [U(3, 8, lo=-2, hi=2)], call("clamp", -0.5, 0.75), lambda a: np.clip(a, -0.5, 0.75), EXACT),
    *[C(n, [U(4, 16, lo=lo, hi=hi)], call(n), fn, tol) for n, (fn, (lo, hi), tol) in _UNARY.items()],
    *[C(n, [U(3, 16, lo=-5, hi=5), U(3, 16)], call(n), lambda a, b, f=f: f(a) * b, tol)  # act(a) * b
      for n, (f, tol) in _GLU.items()],
    # reductions
    C("sum", [U(3, 4, 8)], call("sum"), lambda a: f64(a).sum(keepdims=True), ACC),
    C("sum_rows", [U(2, 3, 8)], call("sum_rows"), lambda a: f64(a).sum(-1, keepdims=True), ACC),
    C("mean", [U(2, 3, 8)], call("mean"), lambda a: f64(a).mean(-1, keepdims=True), ACC),
    C("argmax", [U(5, 16)], call("argmax"), lambda a: a.argmax(-1), EXACT),
    C("argsort", [U(3, 16)], call("argsort"), lambda a: np.argsort(a, -1), EXACT),
    C("argsort_desc", [U(3, 16)], call("argsort", descending=True), lambda a: np.argsort(-a, -1), EXACT),
    C("top_k", [U(3, 32)], call("top_k", 5), lambda a: np.sort(np.argsort(-a, -1)[:, :5], -1), EXACT,
      canon=lambda got: np.sort(got, -1)),  # ggml returns the top k indices in no particular order
    # normalisation and softmax
    C("norm", [U(3, 32, lo=-2, hi=3)], call("norm", 1e-5),
      lambda a: (a - f64(a).mean(-1, keepdims=True)) / np.sqrt(f64(a).var(-1, keepdims=True) + 1e-5), ACC),
    C("rms_norm", [U(3, 32, lo=-2, hi=3)], call("rms_norm", 1e-5),
      lambda a: a / np.sqrt((f64(a) ** 2).mean(-1, keepdims=True) + 1e-5), ACC),
    C("l2_norm", [U(3, 32)], call("l2_norm", 1e-12), lambda a: a / np.linalg.norm(f64(a), axis=-1, keepdims=True), ACC),
    C("group_norm", [U(2, 6, 4, 5, lo=-2, hi=3)], call("group_norm", 3, 1e-6), lambda a: group_norm(a, 3, 1e-6), ACC),
    C("soft_max", [U(2, 3, 16, lo=-4, hi=4)], call("soft_max"), softmax, ACC),
    C("soft_max_mask_scale", [U(4, 3, 16, lo=-4, hi=4), U(5, 16)],  # the mask has spare rows and covers all heads
      call("soft_max", scale=0.3), lambda a, m: softmax(a, m, 0.3), ACC),
    C("soft_max_f16_mask_alibi", [U(4, 3, 8, lo=-4, hi=4), CAUSAL(3, 8, alibi=True)],
      call("soft_max", max_bias=8.0), lambda a, m: softmax(a, m, 1.0, 8.0), ACC),
    C("diag_mask_inf", [U(2, 4, 6)], call("diag_mask_inf", 2), lambda a: diag_mask(a, 2), EXACT),
    C("diag_mask_inf_soft_max", [U(2, 4, 6)], lambda c, a: a.diag_mask_inf(2).soft_max(),
      lambda a: softmax(diag_mask(a, 2)), ACC),
    # matrix products: numpy a (M, K) is ggml [K, M], and mul_mat(a, b) = b @ a.T
    C("mul_mat", [U(6, 32), U(5, 32)], call("mul_mat"), lambda a, b: f64(b) @ a.T, ACC),
    C("mul_mat_bcast_batch", [U(2, 6, 32), U(3, 4, 5, 32)], call("mul_mat"),  # b batch i uses a batch i // 2
      lambda a, b: f64(b) @ np.repeat(a, 2, 0).swapaxes(-1, -2), ACC),
    C("mul_mat_f16_weight", [H(6, 64), U(5, 64)], call("mul_mat"), lambda a, b: f64(b) @ f64(a).T, HALF),
    C("mul_mat_transpose_cont", [U(32, 6), U(5, 32)], lambda c, a, b: a.transpose().cont().mul_mat(b),
      lambda a, b: f64(b) @ a, ACC),
    C("mul_mat_permuted_views", [U(7, 2, 16), U(3, 2, 16)],  # k (n_kv, H, d), q (n_q, H, d) -> (H, n_q, n_kv)
      lambda c, k, q: k.permute(0, 2, 1, 3).mul_mat(q.permute(0, 2, 1, 3)),
      lambda k, q: np.einsum("qhd,khd->hqk", f64(q), k), ACC),
    C("out_prod", [U(6, 4), U(6, 5)], call("out_prod"), lambda a, b: f64(b).T @ a, ACC),
    C("mul_mat_id", [U(4, 6, 32), U(3, 2, 32), DISTINCT(2, 4, rows=3)], call("mul_mat_id"), mul_mat_id, ACC),
    C("mul_mat_id_bcast_b", [U(4, 6, 32), U(3, 1, 32), DISTINCT(2, 4, rows=3)], call("mul_mat_id"), mul_mat_id, ACC),
    # attention: q (H, n_q, d) f32, k/v (H_kv, n_kv, d) f16, mask (n_q, n_kv) f16 -> (n_q, H, d_v)
    C("flash_attn_gqa_causal", [U(4, 3, 16), H(2, 8, 16), H(2, 8, 16), CAUSAL(3, 8)],
      call("flash_attn", scale=0.25), lambda q, k, v, m: attention(q, k, v, m, 0.25), HALF),
    C("flash_attn_softcap", [U(2, 4, 16, lo=-3, hi=3), H(2, 6, 16, lo=-3, hi=3), H(2, 6, 16)],
      call("flash_attn", scale=0.25, softcap=2.0), lambda q, k, v: attention(q, k, v, None, 0.25, 2.0), HALF),
    # rope: x (tokens, heads, head_dim), int32 positions (4 streams for rope_multi)
    C("rope_normal", [U(5, 2, 16), IDX(5, hi=40)], call("rope", 16, ops.ROPE_NORMAL),
      lambda x, p: rope(x, p, 16, ops.ROPE_NORMAL), ACC),
    C("rope_neox_partial", [U(5, 2, 16), IDX(5, hi=40)], call("rope", 8, ops.ROPE_NEOX, freq_base=500.0),
      lambda x, p: rope(x, p, 8, ops.ROPE_NEOX, base=500.0), ACC),
    C("rope_multi_mrope", [U(5, 2, 16), IDX(20, hi=40)],  # a low base makes the h/w pairs turn visibly
      call("rope_multi", 16, [4, 2, 2, 0], freq_base=100.0),
      lambda x, p: rope(x, p, 16, ops.ROPE_MROPE, [4, 2, 2, 0], 100.0), ACC),
    C("rope_multi_imrope", [U(5, 2, 16), IDX(20, hi=40)],
      call("rope_multi", 16, [3, 3, 2, 0], ops.ROPE_IMROPE, freq_base=100.0),
      lambda x, p: rope(x, p, 16, ops.ROPE_IMROPE, [3, 3, 2, 0], 100.0), ACC),
    C("rope_multi_vision", [U(6, 2, 16), IDX(24, hi=10)], call("rope_multi", 8, [4, 4, 0, 0], ops.ROPE_VISION),
      lambda x, p: rope(x, p, 8, ops.ROPE_VISION, [4, 4]), ACC),
    # layout, copies, types
    C("reshape", [U(3, 8)], call("reshape", 4, 6), lambda a: a.reshape(6, 4), EXACT),
    C("view_offset", [U(4, 8)], lambda c, a: a.view((3, 2), (4, 32), offset=40).cont(), lambda a: a[1:3, 2:5], EXACT),
    C("view_row_stride", [U(4, 8)], lambda c, a: a.view((8, 2), (4, 64)).cont(), lambda a: a[::2], EXACT),
    C("permute_cont", [U(2, 3, 4, 5)], lambda c, a: a.permute(1, 2, 0, 3).cont(),
      lambda a: np_permute(a, 1, 2, 0, 3), EXACT),
    C("transpose_cont", [U(3, 8)], lambda c, a: a.transpose().cont(), lambda a: a.T, EXACT),
    C("dup", [U(3, 8)], call("dup"), lambda a: a, EXACT),
    C("cpy_f32_to_f16", [U(3, 8), H(3, 8)], call("cpy"), lambda a, b: a.astype(np.float16), EXACT),
    C("cast_f32_to_f16", [U(3, 8, lo=-100, hi=100)], call("cast", DType.F16), lambda a: a.astype(np.float16), EXACT),
    C("cast_f16_to_f32", [H(3, 8)], call("cast", DType.F32), lambda a: a, EXACT),
    C("concat_dim0", [U(3, 4), U(3, 5)], call("concat", 0), lambda a, b: np.concatenate([a, b], -1), EXACT),
    C("concat_dim1", [U(2, 3, 4), U(2, 2, 4)], call("concat", 1), lambda a, b: np.concatenate([a, b], -2), EXACT),
    C("concat_dim2", [U(2, 3, 4), U(1, 3, 4)], call("concat", 2), lambda a, b: np.concatenate([a, b], 0), EXACT),
    C("repeat", [U(1, 3, 4)], call("repeat", 8, 6, 2), lambda a: np.tile(a, (2, 2, 2)), EXACT),
    C("get_rows", [U(10, 8), IDX(6, hi=10)], call("get_rows"), lambda a, i: a[i], EXACT),
    C("get_rows_f16", [H(10, 8), IDX(6, hi=10)], call("get_rows"), lambda a, i: a[i], EXACT),
    C("get_rows_batched", [U(2, 10, 8), IDX(2, 4, hi=10)], call("get_rows"),
      lambda a, i: np.take_along_axis(a, i[..., None], 1), EXACT),
    C("set_rows_i64", [U(10, 8), U(3, 8), DISTINCT(3, 10, dtype=np.int64)], call("set_rows"), set_rows, EXACT),
    C("set_rows_f16_dst", [H(10, 8), U(3, 8), DISTINCT(3, 10)], call("set_rows"), set_rows, EXACT),
    C("pad", [U(2, 3, 4)], call("pad", 1, 2, 0, 1, 3, 0), lambda a: np.pad(a, ((3, 0), (0, 1), (1, 2))), EXACT),
    C("win_part", [U(5, 7, 4)], call("win_part", 3), lambda a: win_part(a, 3), EXACT),
    C("win_unpart", [U(6, 3, 3, 4)], call("win_unpart", 7, 5, 3), lambda a: win_unpart(a, 5, 7, 3), EXACT),
    C("arange", [], lambda c: c.arange(0.5, 8.0, 1.5), lambda: np.arange(0.5, 8.0, 1.5), EXACT),
    # images: kernels (OC, IC, KH, KW), data (N, C, H, W)
    C("im2col", [U(3, 2, 3, 3), U(1, 2, 6, 7)], call("im2col", 2, 1, 1, 1, dtype=DType.F32),
      lambda k, x: im2col(k, x, 2, 1, 1, 1), EXACT),
    C("conv_2d", [U(4, 3, 3, 3), U(2, 3, 8, 9)], lambda c, k, x: ops.conv_2d(k, x, 1, 2, 1, 0),
      lambda k, x: conv2d(k, x, 1, 2, 1, 0), HALF),
    C("conv_2d_direct", [U(4, 3, 3, 3), U(2, 3, 8, 9)], lambda c, k, x: ops.conv_2d(k, x, 2, 1, 0, 1, direct=True),
      lambda k, x: conv2d(k, x, 2, 1, 0, 1), ACC),  # no im2col: f32 throughout
    C("conv_2d_dilated", [H(2, 2, 3, 3), U(1, 2, 9, 9)], lambda c, k, x: ops.conv_2d(k, x, 1, 1, 2, 2, 2, 2),
      lambda k, x: conv2d(k, x, 1, 1, 2, 2, 2, 2), HALF),
    # an f32 kernel fails: conv_2d_dw's f16 im2col meets mul_mat(f32, f16), which the CPU lacks
    C("conv_2d_dw", [H(3, 1, 3, 3), U(2, 3, 7, 8)], lambda c, k, x: ops.conv_2d_dw(k, x, 1, 1, 1, 1),
      lambda k, x: np.einsum("ncyxij,cij->ncyx", patches(x, 3, 3, 1, 1, 1, 1), f64(k[:, 0])), HALF),
    C("pool_1d_max", [U(3, 11)], call("pool_1d", ops.POOL_MAX, 3, 2, 1),
      lambda a: pool1d(a, ops.POOL_MAX, 3, 2, 1), EXACT),
    C("pool_1d_avg", [U(3, 11)], call("pool_1d", ops.POOL_AVG, 3, 2, 1),
      lambda a: pool1d(a, ops.POOL_AVG, 3, 2, 1), ACC),
    C("pool_2d_max", [U(1, 2, 7, 8)], call("pool_2d", ops.POOL_MAX, 3, 3, 2, 2, 1, 1),
      lambda a: pool2d(a, ops.POOL_MAX, 3, 2, 1), EXACT),
    C("pool_2d_avg", [U(1, 2, 7, 8)], call("pool_2d", ops.POOL_AVG, 3, 3, 2, 2, 1, 1),
      lambda a: pool2d(a, ops.POOL_AVG, 3, 2, 1), ACC),
    *[C(f"interpolate_{name}", [U(1, 2, 3, 4)], call("interpolate", shape[::-1], mode),
        lambda a, m=mode, s=shape: interpolate(a, s, m), ACC) for name, mode, shape in _INTERP],
]


def normalised_error(got, ref) -> float:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert [d for d in got.shape if d != 1] == [d for d in ref.shape if d != 1], (got.shape, ref.shape)
    got, inf = got.reshape(ref.shape), np.isinf(ref)  # masks: -inf must be exactly where ref has it
    assert np.array_equal(np.isinf(got), inf) and np.array_equal(got[inf], ref[inf]), "infinities differ"
    assert not np.isnan(got).any(), "NaN in the output"
    got, ref = np.where(inf, 0, got), np.where(inf, 0, ref)
    return float(np.abs(got - ref).max(initial=0) / max(1e-6, np.abs(ref).max(initial=0)))


@pytest.fixture(scope="session")
def report():
    """(op, error, threshold) of every case, printed when the session ends (visible with -s)."""
    rows: list = []
    yield rows
    print(f"\n\n{'op':30} {'error':>9} {'threshold':>9}")
    for name, err, tol in rows:
        print(f"{name:30} {err:9.2e} {tol:9.0e}{'' if err <= tol else '  FAIL'}")


@pytest.fixture(scope="module")
def sched():
    return Scheduler(Backend(n_threads=2))


@pytest.mark.parametrize("case", CASES)
def test_op(case: Case, sched, report):
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))  # a fixed seed per case
    arrays = [make(rng) for make in case.inputs]
    ctx = Context(256)
    tensors = [ctx.input(f"in{i}", a.shape[::-1], _GGML[a.dtype]) for i, a in enumerate(arrays)]
    got, = sched.run(ctx.graph(case.build(ctx, *tensors)), dict(zip(tensors, arrays)))
    err = normalised_error(case.canon(got) if case.canon else got, case.ref(*arrays))
    report.append((case.name, err, case.tol))
    assert err <= case.tol, f"{case.name}: normalised error {err:.3g} > {case.tol:g}"


def test_kv_cache_set_rows_then_view(sched, report):
    """A persistent f16 cache [n_embd, n_ctx], written by set_rows in two steps, read through a view."""
    n_embd, n_ctx = 8, 16
    cache_ctx = Context(4, frozen=True)
    cache = cache_ctx.new_tensor((n_embd, n_ctx), DType.F16, "cache_k")
    Buffer.for_context(cache_ctx).clear(0)
    rng, expected, err = np.random.default_rng(7), np.zeros((n_ctx, n_embd), np.float16), 0.0
    for slots in ([0, 1, 2], [3, 4]):  # step 2 must not lose what step 1 wrote
        ctx = Context(64)
        src, rows = ctx.input("k_cur", (n_embd, len(slots))), ctx.input("slots", (len(slots),), DType.I64)
        with ctx:  # the cache is in a frozen context: its write and view go into this graph's context
            write = cache.set_rows(src, rows)
            out = cache.view((n_embd, slots[-1] + 1), cache.nb[:2]).cast(DType.F32)
        graph = ctx.graph()
        graph.expand(write)  # the write comes first in the graph, as in llama.cpp
        graph.add(out)
        values = rng.uniform(-1, 1, (len(slots), n_embd)).astype(np.float32)
        expected[slots] = values
        sched.alloc(graph)
        src.write(values)
        rows.write(np.array(slots, np.int64))
        sched.compute(graph)
        err = max(err, normalised_error(out.read(), expected[: slots[-1] + 1]))
    report.append(("kv_cache_set_rows_then_view", err, EXACT))
    assert err <= EXACT


def test_shape_mismatch_raises_and_process_survives(sched):
    ctx = Context(16)
    a, b = ctx.input("a", (4, 3)), ctx.input("b", (5, 3))
    with pytest.raises(GgmlError, match="GGML_ASSERT"):
        a.mul_mat(b)
    with pytest.raises(GgmlError, match="GGML_ASSERT"):
        a.add(b)  # b does not repeat into a
    c = ctx.input("c", (4, 2))
    out, = sched.run(ctx.graph(a.mul_mat(c)), {a: np.ones((3, 4), np.float32), c: np.ones((2, 4), np.float32)})
    np.testing.assert_array_equal(out, np.full((2, 3), 4.0))


def test_read_before_allocation_raises():
    ctx = Context(4)
    a = ctx.input("a", (4,))
    with pytest.raises(InvalidArgumentError, match="no data"):
        a.read()


def test_write_of_wrong_size_raises(sched):
    ctx = Context(8)
    a = ctx.input("a", (4, 3))
    sched.alloc(ctx.graph(a.scale(2.0)))
    with pytest.raises(InvalidArgumentError, match="holds 48 bytes"):
        a.write(np.zeros((3, 5), np.float32))
    with pytest.raises(InvalidArgumentError):
        a.write(np.zeros(11, np.float32).tobytes())  # raw bytes are checked too
