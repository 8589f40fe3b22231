"""Q8_0, Q5_0 and Q6_K matrices interleaved 16 rows at a time, for the shim's AVX512-VNNI kernels.

ggml's CPU dot products for these types go one row and one block at a time: decoding reads the
weights at about half the speed the memory allows, and a prefill runs far below the integer
rate. The x16 kernels (csrc/x16_kernels.cpp, x16_q6k.cpp) multiply 16 rows per instruction. It
matters most for a tied lm head, whose Q8_0 or Q6_K embedding table is most of a small model,
and for the Q5_0 and Q6_K matrices of llama.cpp's Q4_K_M files.

A packed weight keeps its type, shape and byte size (16 rows take the same bytes per block,
reordered), so nothing else about it changes: `mul_mat` and `get_rows` on it build the shim's
ops, `read()` gives the GGUF layout back, and ops that would read its bytes as ggml's refuse.
Results equal ggml's bit for bit: the same activation quantization, the same integer dot
products and the same order of float additions.
"""
from __future__ import annotations

import numpy as np

from .._native import check, ffi, lib
from ..errors import InvalidArgumentError
from .dtypes import DType, traits
from .ops import _ctx, _new
from .tensor import Tensor

ROWS = 16  # rows per interleaved group
TYPES = (DType.Q8_0, DType.Q5_0, DType.Q6_K)


def usable() -> bool:
    """True when this build and CPU can run the x16 kernels."""
    return bool(lib.gs_x16_usable())


def packable(shape, dtype) -> bool:
    """A weight the x16 kernels can hold: a Q8_0/Q5_0/Q6_K matrix (ggml order [K, rows]) of whole groups."""
    dims = [int(n) for n in shape]
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return DType(dtype) in TYPES and len(dims) == 2 and dims[1] % ROWS == 0 and usable()


def _convert(fn, dtype: DType, data, n_in: int, n_rows: int) -> np.ndarray:
    src = np.frombuffer(data, np.uint8)
    out = np.empty(src.nbytes, np.uint8)
    check(fn(int(dtype), ffi.from_buffer(src), ffi.from_buffer(out), n_in, n_rows), f"{dtype.name} x16 conversion")
    return out


def pack(dtype: DType, data, n_in: int, n_rows: int) -> np.ndarray:
    """GGUF bytes of n_rows rows -> the x16 layout (same size)."""
    return _convert(lib.gs_pack_x16, DType(dtype), data, n_in, n_rows)


def unpack(dtype: DType, data, n_in: int, n_rows: int) -> np.ndarray:
    """The x16 layout -> GGUF bytes."""
    return _convert(lib.gs_unpack_x16, DType(dtype), data, n_in, n_rows)


class X16Tensor(Tensor):
    """A Q8_0/Q5_0/Q6_K weight [K, rows] whose data is in the x16 layout."""

    __slots__ = ()

    def write_gguf(self, data, first_row: int = 0) -> None:
        """Pack GGUF bytes of whole groups of rows into the tensor from row `first_row` on."""
        n_in, n_rows = self.ne[0], self.ne[1]
        src = np.frombuffer(data, np.uint8)
        tr = traits(self.dtype)
        row_bytes = n_in // tr.block_size * tr.type_size
        rows = src.nbytes // row_bytes
        if src.nbytes % row_bytes or first_row % ROWS or first_row + rows > n_rows:
            raise InvalidArgumentError(f"'{self.name}': {src.nbytes} bytes are not whole rows {first_row}.. of "
                                       f"its {n_rows} rows of {row_bytes} bytes")
        packed = pack(self.dtype, src, n_in, rows)
        check(lib.gs_tensor_write(self.ptr, ffi.from_buffer(packed), first_row * row_bytes, packed.nbytes),
              f"write '{self.name}'")

    def read(self) -> np.ndarray:
        return unpack(self.dtype, super().read(), self.ne[0], self.ne[1]).reshape(self.ne[1], -1)

    def mul_mat(self, x: Tensor) -> Tensor:
        """Like ggml's mul_mat: x [K, ...] -> f32 [rows, ...]."""
        if x.dtype != DType.F32:
            x = x.cast(DType.F32)
        if not x.is_contiguous:
            x = x.cont()
        c = _ctx(x)
        return _new(c, lib.gs_mul_mat_x16(c.ptr, self.ptr, x.ptr), "mul_mat_x16")

    def get_rows(self, ids: Tensor) -> Tensor:
        """Rows `ids` (i32 [n]) dequantized -> f32 [K, n]."""
        c = _ctx(ids)
        return _new(c, lib.gs_get_rows_x16(c.ptr, self.ptr, ids.ptr), "get_rows_x16")


def _refuse(what: str):
    def op(self, *args, **kwargs):
        raise InvalidArgumentError(
            f"'{self.name}' is a {self.dtype.name} weight interleaved for ggsight's kernels: {what} would read "
            f"its bytes in ggml's layout; use mul_mat/get_rows, or load with repack=False")
    op.__name__ = what
    return op


for _op in ("view", "reshape", "permute", "transpose", "cont", "dup", "cast", "cpy", "concat", "repeat",
            "mul_mat_id", "out_prod", "add", "mul"):
    setattr(X16Tensor, _op, _refuse(_op))
