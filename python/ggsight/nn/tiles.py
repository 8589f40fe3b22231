"""Attention of an image's patches over each other, on the CPU's bf16 tile units where the
tower's weights were bound to them at load (ggml/tiles.py), with ggml's attention otherwise."""
from __future__ import annotations

from ..ggml import DType, Tensor
from ..ggml.tiles import attention_bf16_tiles, reads_tiles
from .layers import attention


def patch_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, *, exact: bool,
                    flash: bool = True) -> Tensor:
    """q, k, v [head_dim, n_head, n_patches] as projected -> [head_dim * n_head, n_patches].

    Unmasked, in a graph whose matmuls run on tiles (a bf16 tower on an AMX CPU): the tile
    kernel (bf16 products, f32 sums). Otherwise ggml's attention, with `mask` [n, n] f16 when
    given; fused (flash) with K/V rounded to f16, half the traffic, unless `exact` (f32 weights
    ask for f32 maths)."""
    if mask is None and reads_tiles(q):
        return attention_bf16_tiles(q, k, v, scale)
    k, v = k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)                     # [head_dim, n_patches, n_head]
    if flash and not exact:
        k, v = k.cast(DType.F16), v.cast(DType.F16)
    return attention(q, k, v, mask, scale, flash=flash)
