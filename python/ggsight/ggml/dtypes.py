"""ggml tensor types and their storage traits, for the pinned ggml (vendor/ggml, 0.25.3).

The numbers are copied from `type_traits` in vendor/ggml/src/ggml.c and the block structs
in vendor/ggml/src/ggml-common.h (whose static_asserts pin each sizeof). A test compares
this table with ggml's runtime traits, so bumping ggml cannot silently desynchronise it.

Pure Python on purpose: the GGUF reader, the memory planner and the converter need these
sizes before (or without) the native library being loaded.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

__all__ = [
    "DType",
    "TypeTraits",
    "traits",
    "row_bytes",
    "tensor_bytes",
    "numpy_dtype",
    "dtype_from_name",
    "QK_K",
]

QK_K = 256  # elements per super-block of the k-quants and i-quants


class DType(enum.IntEnum):
    """`enum ggml_type`. Ids 4, 5 and 31-33, 36-38 were removed from ggml and are absent here,
    so a GGUF file using them is rejected as having an unknown type (as ggml does)."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41
    Q2_0 = 42

    @property
    def traits(self) -> "TypeTraits":
        return _TRAITS[self]

    def __str__(self) -> str:
        return _TRAITS[self].name


@dataclass(frozen=True)
class TypeTraits:
    name: str          # ggml_type_name(), e.g. "q4_K"
    block_size: int    # elements per block (ggml_blck_size)
    type_size: int     # bytes per block (ggml_type_size)
    is_quantized: bool


def _t(name: str, block_size: int, type_size: int, is_quantized: bool = True) -> TypeTraits:
    return TypeTraits(name, block_size, type_size, is_quantized)


# ggml_half is 2 bytes; K_SCALE_SIZE is 12. Each size is the static_assert of its block
# struct, written out so it can be checked against ggml-common.h by eye.
_TRAITS: dict[DType, TypeTraits] = {
    DType.F32: _t("f32", 1, 4, False),
    DType.F16: _t("f16", 1, 2, False),
    DType.Q4_0: _t("q4_0", 32, 2 + 32 // 2),
    DType.Q4_1: _t("q4_1", 32, 2 * 2 + 32 // 2),
    DType.Q5_0: _t("q5_0", 32, 2 + 4 + 32 // 2),
    DType.Q5_1: _t("q5_1", 32, 2 * 2 + 4 + 32 // 2),
    DType.Q8_0: _t("q8_0", 32, 2 + 32),
    # The gguf PyPI package still says 40 bytes (two floats); ggml's block_q8_1 has two halves.
    DType.Q8_1: _t("q8_1", 32, 2 * 2 + 32),
    DType.Q2_K: _t("q2_K", QK_K, 2 * 2 + QK_K // 16 + QK_K // 4),
    DType.Q3_K: _t("q3_K", QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    DType.Q4_K: _t("q4_K", QK_K, 2 * 2 + 12 + QK_K // 2),
    DType.Q5_K: _t("q5_K", QK_K, 2 * 2 + 12 + QK_K // 2 + QK_K // 8),
    DType.Q6_K: _t("q6_K", QK_K, 2 + QK_K // 16 + 3 * QK_K // 4),
    DType.Q8_K: _t("q8_K", QK_K, 4 + QK_K + QK_K // 16 * 2),
    DType.IQ2_XXS: _t("iq2_xxs", QK_K, 2 + QK_K // 8 * 2),
    DType.IQ2_XS: _t("iq2_xs", QK_K, 2 + QK_K // 8 * 2 + QK_K // 32),
    DType.IQ3_XXS: _t("iq3_xxs", QK_K, 2 + 3 * (QK_K // 8)),
    DType.IQ1_S: _t("iq1_s", QK_K, 2 + QK_K // 8 + QK_K // 16),
    DType.IQ4_NL: _t("iq4_nl", 32, 2 + 32 // 2),
    DType.IQ3_S: _t("iq3_s", QK_K, 2 + 13 * (QK_K // 32) + QK_K // 64),
    DType.IQ2_S: _t("iq2_s", QK_K, 2 + QK_K // 4 + QK_K // 16),
    DType.IQ4_XS: _t("iq4_xs", QK_K, 2 + 2 + QK_K // 64 + QK_K // 2),
    DType.I8: _t("i8", 1, 1, False),
    DType.I16: _t("i16", 1, 2, False),
    DType.I32: _t("i32", 1, 4, False),
    DType.I64: _t("i64", 1, 8, False),
    DType.F64: _t("f64", 1, 8, False),
    DType.IQ1_M: _t("iq1_m", QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    DType.BF16: _t("bf16", 1, 2, False),
    DType.TQ1_0: _t("tq1_0", QK_K, 2 + QK_K // 64 + (QK_K - 4 * QK_K // 64) // 5),
    DType.TQ2_0: _t("tq2_0", QK_K, 2 + QK_K // 4),
    DType.MXFP4: _t("mxfp4", 32, 1 + 32 // 2),
    DType.NVFP4: _t("nvfp4", 64, 64 // 16 + 64 // 2),
    DType.Q1_0: _t("q1_0", 128, 2 + 128 // 8),
    DType.Q2_0: _t("q2_0", 64, 2 + 64 // 4),
}
assert set(_TRAITS) == set(DType)

_BY_NAME = {t.name.lower(): d for d, t in _TRAITS.items()}

# Explicitly little-endian: GGUF data is little-endian whatever the host.
_NUMPY = {
    DType.F32: np.dtype("<f4"),
    DType.F16: np.dtype("<f2"),
    DType.F64: np.dtype("<f8"),
    DType.I8: np.dtype("i1"),
    DType.I16: np.dtype("<i2"),
    DType.I32: np.dtype("<i4"),
    DType.I64: np.dtype("<i8"),
}


def traits(dtype: DType | int) -> TypeTraits:
    """Traits of a ggml type; ValueError for an id ggml does not (or no longer) define."""
    try:
        return _TRAITS[DType(dtype)]
    except ValueError:
        raise ValueError(f"unknown ggml type id {int(dtype)}") from None


def dtype_from_name(name: str) -> DType:
    """"q4_K", "Q4_K", "f16", ... -> DType (ggml's names, case-insensitive)."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        raise ValueError(f"unknown ggml type name {name!r}") from None


def row_bytes(dtype: DType | int, n_elements: int) -> int:
    """Bytes of a contiguous row of n elements (ggml_row_size)."""
    t = traits(dtype)
    if n_elements < 0 or n_elements % t.block_size:
        raise ValueError(
            f"{n_elements} elements is not a multiple of the {t.name} block size {t.block_size}"
        )
    return n_elements // t.block_size * t.type_size


def tensor_bytes(dtype: DType | int, shape: Iterable[int]) -> int:
    """Bytes of a contiguous tensor; shape in ggml order (ne0 first), so ne0 must hold whole
    blocks: quantized blocks never straddle rows."""
    dims = tuple(int(d) for d in shape)
    if not dims:
        return row_bytes(dtype, 1)
    return row_bytes(dtype, dims[0]) * math.prod(dims[1:])


def numpy_dtype(dtype: DType | int) -> np.dtype | None:
    """The numpy dtype holding this type's elements one-to-one, or None (quantized types,
    and bf16, which numpy has no dtype for)."""
    return _NUMPY.get(DType(dtype))
