"""A pure-Python reader for GGUF v2/v3 files (little-endian), over a read-only mmap.

    with GGUFFile.open("model.gguf") as f:
        f.arch, f.get("gemma3.block_count"), f.tensor("token_embd.weight").shape
        f.tensor_data("token_embd.weight")    # zero-copy memoryview into the mmap

Metadata values come back as Python scalars (int, float, bool, str); arrays of numbers or
bools as 1-D numpy arrays (copies, so they outlive close()), arrays of strings as list[str],
nested arrays as lists of those. Tensor shapes are in ggml order (ne0 first), as stored.

Every problem with a file's contents raises GGUFError naming the file, what is wrong and
where (OSError from opening it propagates unchanged). Counts and lengths read from the file
are checked against the bytes that remain before anything is allocated for them, so a
hostile file cannot make us allocate more than it is large.
"""

from __future__ import annotations

import enum
import math
import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GGSightError
from .dtypes import DType, numpy_dtype, traits

__all__ = ["GGUFError", "GGUFValueType", "GGUFFile", "TensorInfo"]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # v3 only added big-endian files; the layout is the same
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4         # GGML_MAX_DIMS
MAX_NAME = 64        # GGML_MAX_NAME, including the terminating NUL
MAX_ELEMENTS = 2**62
MAX_ARRAY_DEPTH = 8  # nesting is legal in GGUF but unused in practice; bound the recursion

# Smallest possible encodings, used to reject counts the remaining bytes cannot hold.
_MIN_KV = 8 + 1 + 4 + 1                # key length, 1-byte key, type, 1-byte value
_MIN_TENSOR_INFO = 8 + 1 + 4 + 8 + 4 + 8  # name length, 1-byte name, n_dims, 1 dim, type, offset

_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from


class GGUFError(GGSightError, ValueError):
    """The file is not a GGUF file this reader can use; the message says why."""


def required(gguf, key: str, default: Any = None) -> Any:
    """gguf.get(key, default) of a GGUFFile (or a view of one), or a GGUFError naming the file
    and the key when it has neither: what model configs read their hyperparameters with."""
    value = gguf.get(key, default)
    if value is None:
        raise GGUFError(f"{getattr(gguf, 'path', 'GGUF file')}: missing metadata key {key}")
    return value


GGUFValueType = enum.IntEnum("GGUFValueType", [  # gguf_type, in id order from 0
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL", "STRING",
    "ARRAY", "UINT64", "INT64", "FLOAT64"], start=0)
GGUFValueType.__module__ = __name__

# struct format of each fixed-size value type (bools are one byte), and its numpy twin.
_FORMAT = {GGUFValueType[k]: v for k, v in dict(
    UINT8="B", INT8="b", UINT16="H", INT16="h", UINT32="I", INT32="i", FLOAT32="f",
    BOOL="B", UINT64="Q", INT64="q", FLOAT64="d").items()}
_STRUCT = {t: struct.Struct("<" + f).unpack_from for t, f in _FORMAT.items()}
_SCALAR = {t: np.dtype("<" + f) for t, f in _FORMAT.items()}
_MIN_ELEMENT = {**{t: d.itemsize for t, d in _SCALAR.items()},
                GGUFValueType.STRING: 8, GGUFValueType.ARRAY: 4 + 8}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: ne0 (the contiguous row) first
    dtype: DType
    offset: int             # relative to GGUFFile.data_offset
    nbytes: int
    n_elements: int
    abs_offset: int         # offset in the file

    @property
    def numpy_shape(self) -> tuple[int, ...]:
        return self.shape[::-1]


class GGUFFile:
    """An open GGUF file. Use GGUFFile.open(path), ideally as a context manager."""

    path: str
    version: int
    file_size: int
    alignment: int                          # general.alignment, default 32
    data_offset: int                        # file offset of the tensor data section
    metadata: dict[str, Any]                # in file order
    metadata_types: dict[str, GGUFValueType]
    array_types: dict[str, GGUFValueType]   # element type of each ARRAY value (outer level)
    tensors: list[TensorInfo]               # in file order

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "GGUFFile":
        return cls(path)

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._name = os.path.basename(self.path) or self.path
        self.mmap: mmap.mmap | None = None
        # OSError (missing file, no permission) propagates as is: it is not about the contents.
        with open(self.path, "rb") as fh:
            self.file_size = os.fstat(fh.fileno()).st_size
            if self.file_size == 0:
                raise self._error("empty file (0 bytes)")
            self.mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._pos = 0
        try:
            self._parse()
        except GGUFError:
            self.close()
            raise
        except (struct.error, IndexError, OverflowError, ValueError, MemoryError) as e:
            # Every read is bounds-checked first; this is a safety net, not a code path.
            self.close()
            raise self._error(f"malformed file near offset {self._pos}: {e!r}") from e

    # ---- parsing -------------------------------------------------------------------------

    def _error(self, what: str) -> GGUFError:
        return GGUFError(f"{self._name}: {what}")

    def _need(self, n: int, what: str) -> int:
        """Check that n bytes are left at the cursor; returns the cursor and advances it."""
        pos = self._pos
        if n > self.file_size - pos:
            raise self._error(f"truncated: {what} needs {n} bytes at offset {pos} "
                              f"but the file has {self.file_size}")
        self._pos = pos + n
        return pos

    def _u32(self, what: str) -> int:
        return _U32(self.mmap, self._need(4, what))[0]

    def _u64(self, what: str) -> int:
        return _U64(self.mmap, self._need(8, what))[0]

    def _string(self, what: str) -> str:
        n = self._u64(f"length of {what}")
        if n > self.file_size - self._pos:
            raise self._error(f"{what}: string length {n} at offset {self._pos - 8} runs past "
                              f"the end of the file ({self.file_size} bytes)")
        pos = self._need(n, what)
        return str(self.mmap[pos:pos + n], "utf-8", "replace")

    def _value_type(self, raw: int, key: str) -> GGUFValueType:
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise self._error(f"key {key!r}: unknown value type {raw}") from None

    def _value(self, vtype: GGUFValueType, key: str) -> Any:
        if vtype is GGUFValueType.STRING:
            return self._string(f"value of {key!r}")
        if vtype is GGUFValueType.ARRAY:
            return self._array(key, 1)
        size = _SCALAR[vtype].itemsize
        v = _STRUCT[vtype](self.mmap, self._need(size, f"value of {key!r}"))[0]
        return v != 0 if vtype is GGUFValueType.BOOL else v

    def _array(self, key: str, depth: int) -> Any:
        if depth > MAX_ARRAY_DEPTH:
            raise self._error(f"key {key!r}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
        etype = self._value_type(self._u32(f"array type of {key!r}"), key)
        n = self._u64(f"array length of {key!r}")
        left = self.file_size - self._pos
        if n > left // _MIN_ELEMENT[etype]:
            raise self._error(f"key {key!r}: array of {n} {etype.name} elements at offset "
                              f"{self._pos - 8} cannot fit in the {left} bytes left in the file")
        if depth == 1:
            self.array_types[key] = etype
        if etype is GGUFValueType.STRING:
            return self._string_array(n, key)
        if etype is GGUFValueType.ARRAY:
            return [self._array(key, depth + 1) for _ in range(n)]
        dt = _SCALAR[etype]
        pos = self._need(n * dt.itemsize, f"array {key!r}")
        if n == 0:
            return np.empty(0, bool if etype is GGUFValueType.BOOL else dt.newbyteorder("="))
        arr = np.frombuffer(self.mmap, dt, count=n, offset=pos)
        # Copy: a view would pin the mmap open (close() raises BufferError while views exist).
        return arr != 0 if etype is GGUFValueType.BOOL else arr.astype(dt.newbyteorder("="))

    def _string_array(self, n: int, key: str) -> list[str]:
        # The hot loop for 262k-token vocabularies: locals only, one bounds check per string.
        mm, size, pos, u64 = self.mmap, self.file_size, self._pos, _U64
        out: list[str] = []
        append = out.append
        for i in range(n):
            if pos + 8 > size:
                self._pos = pos
                self._need(8, f"length of string {i} of {key!r}")
            ln = u64(mm, pos)[0]
            start = pos + 8
            pos = start + ln
            if pos > size:
                raise self._error(f"key {key!r}: string {i} length {ln} at offset {start - 8} "
                                  f"runs past the end of the file ({size} bytes)")
            append(str(mm[start:pos], "utf-8", "replace"))
        self._pos = pos
        return out

    def _parse(self) -> None:
        head = bytes(self.mmap[:4])
        if head != GGUF_MAGIC[:len(head)]:
            raise self._error(f"bad magic {head!r}: not a GGUF file")
        self._need(4 + 4 + 8 + 8, "header")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", self.mmap, 4)
        self.version = version
        if version not in SUPPORTED_VERSIONS:
            if version and version & 0xFFFF == 0:  # a small version number, byte-swapped
                raise self._error(f"big-endian GGUF file (version reads as {version:#x}): "
                                  "only little-endian files are supported")
            raise self._error(f"unsupported GGUF version {version} (supported: 2, 3)")
        left = self.file_size - self._pos
        if n_kv > left // _MIN_KV:
            raise self._error(f"header claims {n_kv} metadata entries (n_kv) but only {left} "
                              "bytes follow the header")
        if n_tensors > left // _MIN_TENSOR_INFO:
            raise self._error(f"header claims {n_tensors} tensors (n_tensors) but only {left} "
                              "bytes follow the header")

        self.metadata, self.metadata_types, self.array_types = {}, {}, {}
        for i in range(n_kv):
            key = self._string(f"key {i}")
            if not key:
                raise self._error(f"metadata key {i} is empty")
            if key in self.metadata:
                raise self._error(f"duplicate metadata key {key!r} (entry {i})")
            vtype = self._value_type(self._u32(f"type of key {key!r}"), key)
            self.metadata_types[key] = vtype
            self.metadata[key] = self._value(vtype, key)

        self.alignment = DEFAULT_ALIGNMENT
        if "general.alignment" in self.metadata:
            if self.metadata_types["general.alignment"] is not GGUFValueType.UINT32:
                raise self._error("general.alignment must be a UINT32, not "
                                  f"{self.metadata_types['general.alignment'].name}")
            self.alignment = self.metadata["general.alignment"]
            if self.alignment <= 0 or self.alignment & (self.alignment - 1):
                raise self._error(f"general.alignment {self.alignment} is not a power of two")

        self._names: set[str] = set()
        raw = [self._tensor_info(i) for i in range(n_tensors)]
        # ggml pads to the data section only when there are tensors; do the same.
        self.data_offset = -(-self._pos // self.alignment) * self.alignment if raw else self._pos
        self.tensors = [TensorInfo(*t, abs_offset=self.data_offset + t[3]) for t in raw]
        self._by_name = {t.name: t for t in self.tensors}
        self._check_data_ranges()

    def _tensor_info(self, i: int) -> tuple:
        name = self._string(f"name of tensor {i}")
        what = f"tensor {i} ({name!r})"
        if len(name.encode("utf-8", "replace")) >= MAX_NAME:
            raise self._error(f"{what}: name is longer than ggml's {MAX_NAME - 1} bytes")
        if name in self._names:
            raise self._error(f"duplicate tensor name {name!r} (tensor {i})")
        self._names.add(name)
        n_dims = self._u32(f"{what} info")
        if not 1 <= n_dims <= MAX_DIMS:
            raise self._error(f"{what}: n_dims is {n_dims}, must be 1..{MAX_DIMS}")
        shape = struct.unpack_from(f"<{n_dims}q", self.mmap, self._need(8 * n_dims, f"{what} shape"))
        if any(d <= 0 for d in shape):
            raise self._error(f"{what}: dimension <= 0 in shape {shape}")
        n_elements = math.prod(shape)
        if n_elements > MAX_ELEMENTS:
            raise self._error(f"{what}: element count of shape {shape} overflows (> 2**62)")
        raw_type = self._u32(f"{what} type")
        try:
            dtype = DType(raw_type)
        except ValueError:
            raise self._error(f"{what}: unknown tensor type {raw_type}") from None
        t = traits(dtype)
        if shape[0] % t.block_size:
            raise self._error(f"{what}: row of {shape[0]} elements is not a multiple of the "
                              f"{t.name} block size {t.block_size}")
        offset = self._u64(f"{what} offset")
        if offset % self.alignment:
            raise self._error(f"{what}: data offset {offset} is not aligned to {self.alignment}")
        nbytes = n_elements // t.block_size * t.type_size
        return (name, shape, dtype, offset, nbytes, n_elements)

    def _check_data_ranges(self) -> None:
        end_prev, prev = self.data_offset, None
        for t in sorted(self.tensors, key=lambda t: t.abs_offset):
            end = t.abs_offset + t.nbytes
            if end > self.file_size:
                raise self._error(f"tensor {t.name!r}: data [{t.abs_offset}, {end}) extends past "
                                  f"the end of the file ({self.file_size} bytes)")
            if prev is not None and t.abs_offset < end_prev:
                raise self._error(f"tensor {t.name!r}: data at offset {t.offset} overlaps tensor "
                                  f"{prev.name!r} (offset {prev.offset}, {prev.nbytes} bytes)")
            end_prev, prev = end, t

    # ---- access --------------------------------------------------------------------------

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"tensor {name!r} not found in {self._name} "
                           f"({len(self.tensors)} tensors)") from None

    def _info(self, name_or_info: str | TensorInfo) -> TensorInfo:
        return name_or_info if isinstance(name_or_info, TensorInfo) else self.tensor(name_or_info)

    def tensor_data(self, name_or_info: str | TensorInfo) -> memoryview:
        """The tensor's bytes: a read-only, zero-copy view into the mmap. Release views (or
        let them go out of scope) before close() to unmap at once; otherwise the mapping
        lives until the last view is gone."""
        if self.mmap is None:
            raise ValueError(f"{self._name} is closed")
        t = self._info(name_or_info)
        return memoryview(self.mmap)[t.abs_offset:t.abs_offset + t.nbytes]

    def tensor_numpy(self, name_or_info: str | TensorInfo) -> np.ndarray:
        """Zero-copy numpy view in numpy order (shape reversed). Types without a numpy dtype
        (quantized, bf16) come back as uint8 rows: shape (..., ne1, row_bytes)."""
        t = self._info(name_or_info)
        dt = numpy_dtype(t.dtype)
        data = np.frombuffer(self.tensor_data(t), np.uint8)
        if dt is not None:
            return data.view(dt).reshape(t.numpy_shape)
        return data.reshape(t.numpy_shape[:-1] + (-1,))

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.metadata

    def __getitem__(self, key: str) -> Any:
        return self.metadata[key]

    @property
    def arch(self) -> str | None:
        return self.metadata.get("general.architecture")

    def describe(self) -> str:
        types = Counter(str(t.dtype) for t in self.tensors)
        kinds = ", ".join(f"{n} {name}" for name, n in types.most_common())
        n_params = sum(t.n_elements for t in self.tensors)
        return (f"{self._name}: GGUF v{self.version}, arch {self.arch or '?'}, "
                f"{len(self.metadata)} metadata keys, {len(self.tensors)} tensors "
                f"({kinds or 'none'}), {n_params / 1e6:.1f}M parameters, "
                f"{self.file_size / 2**20:.1f} MiB, data at {self.data_offset}, "
                f"alignment {self.alignment}")

    def __repr__(self) -> str:
        return f"<GGUFFile {self.path!r} ({'closed' if self.mmap is None else 'open'})>"

    # ---- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        mm, self.mmap = self.mmap, None
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass  # views into it are alive; they keep it mapped until they are released

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
