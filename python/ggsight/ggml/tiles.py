"""bf16 matrices laid out for Intel AMX tiles, and the shim's kernels that use them.

ggml's CPU matmul runs at the f32 FMA rate even for bf16 weights; on CPUs with AMX-BF16
(Sapphire Rapids and later) the shim's own kernels multiply 16x16x32 bf16 blocks per
instruction. They are ggml custom ops: CPU backend only, products in bf16, sums in f32.

Tile layout of a weight W [n_out, K] (numpy order), both sides zero-padded to multiples of 32:
for each block of 16 outputs, for each run of 32 inputs, one 1 KiB tile whose row p holds, for
each of the 16 outputs n, W[n, 2p] and W[n, 2p + 1] ("VNNI" pairs).
"""
from __future__ import annotations

import numpy as np

from .._native import lib
from .backend import Buffer
from .dtypes import DType
from .ops import _ctx, _new
from .tensor import Context, Tensor


def amx_bf16_usable() -> bool:
    """True when this build and CPU can run the bf16 tile kernels."""
    return bool(lib.gs_amx_bf16_usable())


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), rounding to nearest even like the kernels do."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def pack_bf16_tiles(w: np.ndarray) -> np.ndarray:
    """W [n_out, K] as float32 or bf16 bits (uint16) -> the flat uint16 tile layout."""
    bits = w if w.dtype == np.uint16 else to_bf16_bits(w)
    n_out, k = bits.shape
    mp, kp = -(-n_out // 32) * 32, -(-k // 32) * 32
    padded = np.zeros((mp, kp), np.uint16)
    padded[:n_out, :k] = bits
    # [out blk, n, k run, p, pair] -> [out blk, k run, p, n, pair]
    tiles = padded.reshape(mp // 16, 16, kp // 32, 16, 2).transpose(0, 2, 3, 1, 4)
    return np.ascontiguousarray(tiles).reshape(-1)


def _weight_bits(weight: Tensor) -> np.ndarray:
    """A weight's values as bf16 bits [n_out, K]: bf16 as stored, f32/f16 rounded."""
    n_in, n_out = weight.ne[0], weight.ne[1]
    data = weight.read()
    if weight.dtype == DType.BF16:
        return data.view(np.uint16).reshape(n_out, n_in)
    return to_bf16_bits(data.astype(np.float32).reshape(n_out, n_in))


class TiledMatrix:
    """A weight matrix repacked into AMX tiles in CPU memory (its own frozen context)."""

    def __init__(self, weight: Tensor, name: str | None = None):
        if len([n for n in weight.ne if n > 1]) > 2 or weight.ne[2] != 1 or weight.ne[3] != 1:
            raise ValueError(f"tiles hold 2-D matrices; '{weight.name}' has shape {weight.ne}")
        self.n_in, self.n_out = weight.ne[0], weight.ne[1]
        packed = pack_bf16_tiles(_weight_bits(weight))
        self.ctx = Context(2, frozen=True)
        self.tensor = self.ctx.new_tensor((packed.size,), DType.I16, f"{name or weight.name}.tiles")
        self.buffer = Buffer.for_context(self.ctx, 0)
        self.buffer.mark_weights()
        self.tensor.write(packed.view(np.int16))

    @property
    def nbytes(self) -> int:
        return self.tensor.nbytes

    def mul_mat(self, x: Tensor) -> Tensor:
        """Like `weight.mul_mat(x)`: x [K, ...] f32 (contiguous) -> [n_out, ...]."""
        c = _ctx(x)
        c.refs.append(self)  # the graph reads the tiles: they live as long as it does
        return _new(c, lib.gs_mul_mat_bf16_tiles(c.ptr, self.tensor.ptr, x.ptr, self.n_out), "mul_mat_bf16_tiles")


def attention_bf16_tiles(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Unmasked attention of every token over every token (a vision tower's patches).

    q, k, v: contiguous f32 [head_dim, n_head, n_tokens] -> [head_dim * n_head, n_tokens]."""
    c = _ctx(q, k, v)
    return _new(c, lib.gs_attention_bf16_tiles(c.ptr, q.ptr, k.ptr, v.ptr, float(scale)), "attention_bf16_tiles")
