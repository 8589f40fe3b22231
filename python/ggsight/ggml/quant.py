"""Quantize f32 rows into a ggml type and back, with ggml's own kernels."""
from __future__ import annotations

import numpy as np

from .._native import check, ffi, lib
from .dtypes import DType, traits


def quantize(values: np.ndarray, dtype: DType | int) -> np.ndarray:
    """f32 array (..., n_per_row) -> uint8 array (..., row_bytes) in `dtype`'s block format."""
    src = np.ascontiguousarray(values, dtype=np.float32)
    n_per_row = src.shape[-1]
    nrows = src.size // n_per_row if n_per_row else 0
    dst = np.empty(src.shape[:-1] + (lib.gs_row_size(int(dtype), n_per_row),), dtype=np.uint8)
    check(lib.gs_quantize(int(dtype), ffi.from_buffer("float[]", src), ffi.from_buffer(dst), nrows, n_per_row),
          f"quantize to {DType(dtype).name}")
    return dst


def dequantize(data: np.ndarray, dtype: DType | int, n_per_row: int) -> np.ndarray:
    """Raw rows in `dtype` -> f32 array (..., n_per_row)."""
    raw = np.ascontiguousarray(data).view(np.uint8)
    if DType(dtype) == DType.F32:
        out = raw.view(np.float32).copy()
        return out.reshape(-1, n_per_row) if n_per_row else out
    tr = traits(dtype)
    n = raw.size // tr.type_size * tr.block_size
    out = np.empty(n, dtype=np.float32)
    check(lib.gs_dequantize(int(dtype), ffi.from_buffer(raw), ffi.from_buffer("float[]", out), n),
          f"dequantize {DType(dtype).name}")
    return out.reshape(-1, n_per_row) if n_per_row else out
