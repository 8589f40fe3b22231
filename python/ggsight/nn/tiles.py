"""Matmuls and whole-sequence attention on the CPU's bf16 tile units where a model asks for
them (its weights are bf16) and the machine has them; plain ggml ops otherwise."""
from __future__ import annotations

from typing import Iterable

from ..ggml import DType, Tensor
from ..ggml.tiles import TiledMatrix, amx_bf16_usable, attention_bf16_tiles


def all_bf16(weights: Iterable[Tensor]) -> bool:
    return all(w.dtype == DType.BF16 for w in weights)


class TileKernels:
    """`mul_mat(w, x)` and `attention(q, k, v, scale)` for one set of weights.

    enabled=None decides by the weights: bf16 matrices take the tile kernels (products in
    bf16 as the weights already are, sums in f32); f32/f16 weights keep ggml's kernels, whose
    rounding the f32 conformance tests pin."""

    def __init__(self, matrices: Iterable[Tensor], enabled: bool | None = None):
        matrices = list(matrices)
        wanted = all_bf16(matrices) if enabled is None else enabled
        self.enabled = bool(wanted and matrices and amx_bf16_usable())
        self._tiled = {w.name: TiledMatrix(w) for w in matrices} if self.enabled else {}

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._tiled.values())

    def mul_mat(self, w: Tensor, x: Tensor) -> Tensor:
        tiled = self._tiled.get(w.name)
        return tiled.mul_mat(x) if tiled is not None else w.mul_mat(x)

    def attention(self, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor | None:
        """Unmasked attention, q/k/v [head_dim, n_head, n_tokens]; None when not enabled."""
        return attention_bf16_tiles(q, k, v, scale) if self.enabled else None
