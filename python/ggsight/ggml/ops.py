"""ggml ops as Tensor methods, 1:1 with the shim (csrc/ggsight.h). Shapes in ggml order.

Each function takes the tensor it becomes a method of as `a`. `attach(Tensor)` installs them.
"""
from __future__ import annotations

from typing import Sequence

from .._native import check_ptr, ffi, lib
from ..errors import InvalidArgumentError
from .dtypes import DType

ROPE_NORMAL = lib.GS_ROPE_NORMAL
ROPE_NEOX = lib.GS_ROPE_NEOX
ROPE_MROPE = lib.GS_ROPE_MROPE
ROPE_VISION = lib.GS_ROPE_VISION
ROPE_IMROPE = lib.GS_ROPE_IMROPE
POOL_MAX, POOL_AVG = lib.GS_POOL_MAX, lib.GS_POOL_AVG
SCALE_NEAREST, SCALE_BILINEAR, SCALE_BICUBIC = lib.GS_SCALE_NEAREST, lib.GS_SCALE_BILINEAR, lib.GS_SCALE_BICUBIC
SCALE_ALIGN_CORNERS, SCALE_ANTIALIAS = lib.GS_SCALE_FLAG_ALIGN_CORNERS, lib.GS_SCALE_FLAG_ANTIALIAS

_UNARY = ["transpose", "cont", "dup", "sqr", "sqrt", "log", "exp", "floor", "sin", "cos", "abs", "neg", "tanh",
          "sigmoid", "relu", "gelu", "gelu_erf", "gelu_quick", "silu", "softplus", "sum", "sum_rows",
          "mean", "argmax"]
_BINARY = ["add", "sub", "mul", "div", "cpy", "get_rows", "mul_mat", "out_prod", "swiglu_split",
           "geglu_split", "geglu_erf_split"]


def _make_unary(name: str):
    fn = getattr(lib, "gs_" + name)

    def op(a):
        return a._unary(fn, name)
    op.__name__ = name
    return op


def _make_eps(name: str):
    """norm, rms_norm, l2_norm: one epsilon after the tensor."""
    fn = getattr(lib, "gs_" + name)

    def op(a, eps: float):
        c = _ctx(a)
        return _new(c, fn(c.ptr, a.ptr, eps), name)
    op.__name__ = name
    return op


def _make_binary(name: str):
    fn = getattr(lib, "gs_" + name)

    def op(a, b):
        return a._binary(fn, b, name)
    op.__name__ = name
    return op


def _opt(t):
    return ffi.NULL if t is None else t.ptr


def _ctx(*tensors):
    from .tensor import _ctx_for
    return _ctx_for(*tensors)


def _new(ctx, ptr, what):
    from .tensor import Tensor
    return Tensor(ctx, check_ptr(ptr, what))


def _dims(ne: Sequence[int], fill: int = 1):
    if not 1 <= len(ne) <= 4:
        raise InvalidArgumentError(f"1 to 4 dimensions, got {len(ne)}")
    return ffi.new("int64_t[4]", list(ne) + [fill] * (4 - len(ne)))


# ---- views and layout ------------------------------------------------------------------

def reshape(a, *ne: int):
    """Same data, new ggml-order shape (a must be contiguous)."""
    if len(ne) == 1 and isinstance(ne[0], (tuple, list)):
        ne = tuple(ne[0])
    c = _ctx(a)
    return _new(c, lib.gs_reshape(c.ptr, a.ptr, len(ne), _dims(ne)), f"reshape to {ne}")


def view(a, ne: Sequence[int], nb: Sequence[int] | None = None, offset: int = 0):
    """A window into `a`: `ne` elements per dim, `nb` byte strides (nb[0] ignored)."""
    strides = list(nb) if nb is not None else list(a.nb)
    strides += [0] * (4 - len(strides))
    c = _ctx(a)
    return _new(c, lib.gs_view(c.ptr, a.ptr, len(ne), _dims(ne), ffi.new("uint64_t[4]", strides), offset),
                f"view {tuple(ne)}")


def permute(a, ax0: int, ax1: int, ax2: int = 2, ax3: int = 3):
    """Source dim i goes to position ax_i (ggml's convention)."""
    c = _ctx(a)
    return _new(c, lib.gs_permute(c.ptr, a.ptr, ax0, ax1, ax2, ax3), "permute")


def cast(a, dtype: DType | int):
    c = _ctx(a)
    return _new(c, lib.gs_cast(c.ptr, a.ptr, int(dtype)), "cast")


def concat(a, b, dim: int):
    c = _ctx(a, b)
    return _new(c, lib.gs_concat(c.ptr, a.ptr, b.ptr, dim), "concat")


def repeat(a, *ne: int):
    """Tile `a` up to shape `ne` (each dim a multiple of a's)."""
    c = _ctx(a)
    return _new(c, lib.gs_repeat(c.ptr, a.ptr, _dims(ne)), "repeat")


def set_rows(dst, src, rows):
    """Write the rows of `src` into `dst` at indices `rows` (returns dst's view)."""
    c = _ctx(src, rows, dst)
    return _new(c, lib.gs_set_rows(c.ptr, dst.ptr, src.ptr, rows.ptr), "set_rows")


def pad(a, *pads: int):
    """Zero padding: (left0, right0, left1, right1, ...) up to 8 values."""
    p = list(pads) + [0] * (8 - len(pads))
    c = _ctx(a)
    return _new(c, lib.gs_pad(c.ptr, a.ptr, ffi.new("int32_t[8]", p)), "pad")


def win_part(a, w: int):
    c = _ctx(a)
    return _new(c, lib.gs_win_part(c.ptr, a.ptr, w), "win_part")


def win_unpart(a, w0: int, h0: int, w: int):
    c = _ctx(a)
    return _new(c, lib.gs_win_unpart(c.ptr, a.ptr, w0, h0, w), "win_unpart")


# ---- elementwise ------------------------------------------------------------------------

def add_id(a, b, ids):
    c = _ctx(a, b, ids)
    return _new(c, lib.gs_add_id(c.ptr, a.ptr, b.ptr, ids.ptr), "add_id")


def scale(a, s: float, bias: float | None = None):
    c = _ctx(a)
    if bias is None:
        return _new(c, lib.gs_scale(c.ptr, a.ptr, s), "scale")
    return _new(c, lib.gs_scale_bias(c.ptr, a.ptr, s, bias), "scale_bias")


def clamp(a, lo: float, hi: float):
    c = _ctx(a)
    return _new(c, lib.gs_clamp(c.ptr, a.ptr, lo, hi), "clamp")


# ---- reductions and normalisation --------------------------------------------------------

def argsort(a, descending: bool = False):
    c = _ctx(a)
    return _new(c, lib.gs_argsort(c.ptr, a.ptr, lib.GS_SORT_DESC if descending else lib.GS_SORT_ASC), "argsort")


def top_k(a, k: int):
    c = _ctx(a)
    return _new(c, lib.gs_top_k(c.ptr, a.ptr, k), "top_k")


def group_norm(a, n_groups: int, eps: float):
    c = _ctx(a)
    return _new(c, lib.gs_group_norm(c.ptr, a.ptr, n_groups, eps), "group_norm")


def soft_max(a, mask=None, scale: float = 1.0, max_bias: float = 0.0):
    """softmax(a * scale + mask) over ne[0]; the mask broadcasts over heads."""
    c = _ctx(a, mask)
    return _new(c, lib.gs_soft_max(c.ptr, a.ptr, _opt(mask), scale, max_bias), "soft_max")


def diag_mask_inf(a, n_past: int):
    c = _ctx(a)
    return _new(c, lib.gs_diag_mask_inf(c.ptr, a.ptr, n_past), "diag_mask_inf")


# ---- matrix products, attention, positions -----------------------------------------------

def mul_mat_id(experts, b, ids):
    c = _ctx(b, ids, experts)
    return _new(c, lib.gs_mul_mat_id(c.ptr, experts.ptr, b.ptr, ids.ptr), "mul_mat_id")


def flash_attn(q, k, v, mask=None, scale: float = 1.0, max_bias: float = 0.0, softcap: float = 0.0):
    """Fused attention. q [d, n_q, H], k/v [d, n_kv, H_kv]; result [d_v, H, n_q]."""
    c = _ctx(q, k, v, mask)
    return _new(c, lib.gs_flash_attn(c.ptr, q.ptr, k.ptr, v.ptr, _opt(mask), scale, max_bias, softcap),
                "flash_attn")


def rope(a, pos, n_dims: int, mode: int = ROPE_NORMAL, *, freq_base: float = 10000.0,
         freq_scale: float = 1.0, freq_factors=None, n_ctx_orig: int = 0, ext_factor: float = 0.0,
         attn_factor: float = 1.0, beta_fast: float = 32.0, beta_slow: float = 1.0):
    """Rotary embedding of a [head_dim, n_head, n_tokens] by int32 positions `pos`."""
    c = _ctx(a, pos)
    return _new(c, lib.gs_rope(c.ptr, a.ptr, pos.ptr, _opt(freq_factors), n_dims, mode, n_ctx_orig, freq_base,
                               freq_scale, ext_factor, attn_factor, beta_fast, beta_slow), "rope")


def rope_multi(a, pos, n_dims: int, sections: Sequence[int], mode: int = ROPE_MROPE, *,
               freq_base: float = 10000.0, freq_scale: float = 1.0, freq_factors=None, n_ctx_orig: int = 0,
               ext_factor: float = 0.0, attn_factor: float = 1.0, beta_fast: float = 32.0,
               beta_slow: float = 1.0):
    """M-RoPE / vision rope: `pos` holds 4 position streams of n_tokens each."""
    sec = list(sections) + [0] * (4 - len(sections))
    c = _ctx(a, pos)
    return _new(c, lib.gs_rope_multi(c.ptr, a.ptr, pos.ptr, _opt(freq_factors), n_dims, ffi.new("int32_t[4]", sec),
                                     mode, n_ctx_orig, freq_base, freq_scale, ext_factor, attn_factor,
                                     beta_fast, beta_slow), "rope_multi")


# ---- images -------------------------------------------------------------------------------

def im2col(kernel, data, s0: int, s1: int, p0: int, p1: int, d0: int = 1, d1: int = 1,
           is_2d: bool = True, dtype: DType | int = DType.F32):
    c = _ctx(data, kernel)
    return _new(c, lib.gs_im2col(c.ptr, kernel.ptr, data.ptr, s0, s1, p0, p1, d0, d1, int(is_2d), int(dtype)),
                "im2col")


def conv_2d(kernel, data, s0: int = 1, s1: int = 1, p0: int = 0, p1: int = 0, d0: int = 1, d1: int = 1,
            direct: bool = False):
    """kernel [KW, KH, C_in, C_out], data [W, H, C_in, N] -> [W', H', C_out, N]."""
    c = _ctx(data, kernel)
    fn = lib.gs_conv_2d_direct if direct else lib.gs_conv_2d
    return _new(c, fn(c.ptr, kernel.ptr, data.ptr, s0, s1, p0, p1, d0, d1), "conv_2d")


def conv_2d_dw(kernel, data, s0: int = 1, s1: int = 1, p0: int = 0, p1: int = 0, d0: int = 1, d1: int = 1):
    c = _ctx(data, kernel)
    return _new(c, lib.gs_conv_2d_dw(c.ptr, kernel.ptr, data.ptr, s0, s1, p0, p1, d0, d1), "conv_2d_dw")


def pool_1d(a, op: int, k0: int, s0: int, p0: int = 0):
    c = _ctx(a)
    return _new(c, lib.gs_pool_1d(c.ptr, a.ptr, op, k0, s0, p0), "pool_1d")


def pool_2d(a, op: int, k0: int, k1: int, s0: int, s1: int, p0: float = 0.0, p1: float = 0.0):
    c = _ctx(a)
    return _new(c, lib.gs_pool_2d(c.ptr, a.ptr, op, k0, k1, s0, s1, p0, p1), "pool_2d")


def interpolate(a, ne: Sequence[int], mode: int = SCALE_BILINEAR):
    c = _ctx(a)
    return _new(c, lib.gs_interpolate(c.ptr, a.ptr, _dims(ne), mode), "interpolate")


def set_prec_f32(a):
    """Ask for f32 accumulation in this matmul/attention (some backends default to f16)."""
    from .._native import check
    check(lib.gs_tensor_set_prec_f32(a.ptr))
    return a


_FUNCS = [reshape, view, permute, cast, concat, repeat, set_rows, pad, win_part, win_unpart, add_id, scale,
          clamp, argsort, top_k, group_norm, soft_max, diag_mask_inf, mul_mat_id,
          flash_attn, rope, rope_multi, im2col, conv_2d, conv_2d_dw, pool_1d, pool_2d, interpolate,
          set_prec_f32]


def attach(cls) -> None:
    for name in _UNARY:
        setattr(cls, name, _make_unary(name))
    for name in _BINARY:
        setattr(cls, name, _make_binary(name))
    for name in ("norm", "rms_norm", "l2_norm"):
        setattr(cls, name, _make_eps(name))
    for fn in _FUNCS:
        setattr(cls, fn.__name__, fn)
