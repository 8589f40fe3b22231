"""bf16 matrices laid out for Intel AMX tiles, and the shim's kernels that use them.

ggml's CPU matmul runs at the f32 FMA rate even for bf16 weights; on CPUs with AMX-BF16
(Sapphire Rapids and later) the shim's own kernels multiply 16x16x32 bf16 blocks per
instruction. They are ggml custom ops: CPU backend only, products in bf16, sums in f32.

They are bound at load, as the x16 layout is (load_weights(..., tiles=True), which the loader asks
for a vision projector's weights): each bf16 matrix becomes a TiledTensor, whose mul_mat runs the
tile kernel and whose other ops read the weight as stored. A graph that multiplies on the tiles
runs its unmasked attention on them too (nn.tiles.patch_attention), so model code only calls
mul_mat and attention.

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


def tileable(name: str, shape, dtype) -> bool:
    """A weight load_weights(tiles=True) binds: a bf16 matrix (ggml order [K, n_out]) that is not
    an embedding table (those are read by rows, or reshaped into kernels), on a CPU with AMX-BF16."""
    dims = [int(n) for n in shape]
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return (DType(dtype) == DType.BF16 and len(dims) == 2 and min(dims) > 1 and "embd" not in name
            and amx_bf16_usable())


def tiled_nbytes(shape) -> int:
    """Bytes of a [K, n_out] matrix's tile copy (both sides padded to 32, two bytes a value)."""
    k, n_out = int(shape[0]), int(shape[1])
    return (-(-k // 32) * 32) * (-(-n_out // 32) * 32) * 2


def planned_bytes(infos) -> int:
    """The tile copies load_weights(tiles=True) would make for these tensor infos (0 without AMX)."""
    return sum(tiled_nbytes(i.shape) for i in infos if tileable(i.name, i.shape, i.dtype))


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


class TiledTensor(Tensor):
    """A bf16 weight [K, n_out] with a copy in the tile layout: mul_mat runs the tile kernel,
    every other op (transpose, get_rows, read, ...) reads the weight as the file stores it."""

    __slots__ = ("tiles",)

    @classmethod
    def of(cls, weight: Tensor) -> "TiledTensor":
        t = cls(weight.ctx, weight.ptr)
        t.tiles = TiledMatrix(weight)
        return t

    def mul_mat(self, x: Tensor) -> Tensor:
        """Like ggml's mul_mat: x [K, ...] -> f32 [n_out, ...] (x taken as contiguous f32)."""
        if x.dtype != DType.F32:
            x = x.cast(DType.F32)
        if not x.is_contiguous:
            x = x.cont()
        return self.tiles.mul_mat(x)


def reads_tiles(t: Tensor) -> bool:
    """True when t's graph multiplies on tiles (a TiledMatrix is among the context's references)."""
    return any(isinstance(r, TiledMatrix) for r in t.ctx.refs)


def attention_bf16_tiles(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Unmasked attention of every token over every token (a vision tower's patches).

    q, k, v: contiguous f32 [head_dim, n_head, n_tokens] -> [head_dim * n_head, n_tokens]."""
    c = _ctx(q, k, v)
    return _new(c, lib.gs_attention_bf16_tiles(c.ptr, q.ptr, k.ptr, v.ptr, float(scale)), "attention_bf16_tiles")
