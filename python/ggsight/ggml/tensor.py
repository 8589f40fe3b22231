"""Tensor, Context and Graph: ggml graph building from Python.

Shapes are in ggml order everywhere in this module: `ne[0]` is the contiguous dimension
(the reverse of numpy/PyTorch). Reading a tensor into numpy reverses them back.

An op's result goes into the context of its first operand that is still open for graph
building; weights live in frozen contexts, so `w.mul_mat(x)` lands in x's graph context.
When every operand is frozen, the innermost `with ctx:` block decides.
"""
from __future__ import annotations

import threading
from typing import Iterable, Sequence

import numpy as np

from .._native import check, check_ptr, cstr, ffi, lib, owned
from ..errors import InvalidArgumentError
from .dtypes import DType, numpy_dtype, traits

_active = threading.local()


def _active_stack() -> list:
    if not hasattr(_active, "stack"):
        _active.stack = []
    return _active.stack


class Context:
    """Tensor metadata for one graph (or one set of weights); never holds data itself."""

    def __init__(self, max_tensors: int = 4096, *, frozen: bool = False):
        self.ptr = owned(check_ptr(lib.gs_context_new(max_tensors), "context"), lib.gs_context_free)
        self.max_tensors = max_tensors
        self.frozen = frozen
        self.buffers: list = []  # backend memory that holds this context's tensor data
        self.refs: list = []     # other objects whose memory this context's graph reads

    def __enter__(self) -> "Context":
        _active_stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        _active_stack().remove(self)

    def new_tensor(self, shape: Sequence[int], dtype: DType | int = DType.F32, name: str | None = None,
                   *, input: bool = False) -> "Tensor":
        if not 1 <= len(shape) <= 4:
            raise InvalidArgumentError(f"tensors have 1 to 4 dimensions, got shape {tuple(shape)}")
        ne = ffi.new("int64_t[4]", [int(n) for n in shape])
        t = Tensor(self, check_ptr(lib.gs_new_tensor(self.ptr, int(dtype), len(shape), ne),
                                   f"new tensor {name or ''} {tuple(shape)}"))
        if name:
            t.name = name
        if input:
            check(lib.gs_tensor_set_flags(t.ptr, lib.GS_FLAG_INPUT))
        return t

    def input(self, name: str, shape: Sequence[int], dtype: DType | int = DType.F32) -> "Tensor":
        """A tensor whose data the caller writes after the graph is allocated."""
        return self.new_tensor(shape, dtype, name, input=True)

    def tensor(self, name: str) -> "Tensor | None":
        ptr = lib.gs_context_tensor(self.ptr, name.encode())
        return None if ptr == ffi.NULL else Tensor(self, ptr)

    def graph(self, *outputs: "Tensor", max_nodes: int | None = None) -> "Graph":
        return Graph(self, outputs, max_nodes or self.max_tensors)

    # ops that make a tensor from nothing
    def arange(self, start: float, stop: float, step: float = 1.0) -> "Tensor":
        return Tensor(self, check_ptr(lib.gs_arange(self.ptr, start, stop, step), "arange"))


def _ctx_for(*tensors: "Tensor") -> Context:
    for t in tensors:
        if t is not None and not t.ctx.frozen:
            return t.ctx
    stack = _active_stack()
    if stack:
        return stack[-1]
    raise InvalidArgumentError("every operand is a weight: open a graph context with `with ctx:`")


class Tensor:
    """A ggml tensor in a Context. Ops are methods; each returns a new Tensor."""

    __slots__ = ("ctx", "ptr", "_desc")

    def __init__(self, ctx: Context, ptr):
        self.ctx = ctx
        self.ptr = ptr
        self._desc = None

    # ---- description -----------------------------------------------------------------
    def _describe(self):
        if self._desc is None:
            d = ffi.new("gs_tensor_desc *")
            check(lib.gs_tensor_describe(self.ptr, d))
            self._desc = d
        return self._desc

    def describe(self):
        """Fresh description (data placement changes after allocation)."""
        self._desc = None
        return self._describe()

    @property
    def ne(self) -> tuple[int, int, int, int]:
        return tuple(self._describe().ne)

    @property
    def shape(self) -> tuple[int, ...]:
        """ggml-order shape without trailing 1s (at least one dimension)."""
        ne = list(self._describe().ne)
        while len(ne) > 1 and ne[-1] == 1:
            ne.pop()
        return tuple(ne)

    @property
    def nb(self) -> tuple[int, int, int, int]:
        return tuple(self._describe().nb)

    @property
    def dtype(self) -> DType:
        return DType(self._describe().type)

    @property
    def nbytes(self) -> int:
        return self.describe().nbytes

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.ne))

    @property
    def op(self) -> str:
        return ffi.string(self._describe().op).decode()

    @property
    def is_contiguous(self) -> bool:
        return bool(self._describe().is_contiguous)

    @property
    def name(self) -> str:
        return cstr(self.describe().name)

    @name.setter
    def name(self, value: str) -> None:
        check(lib.gs_tensor_set_name(self.ptr, value.encode()))
        self._desc = None

    def named(self, name: str) -> "Tensor":
        """Name for debugging dumps (`attn_norm-3`); returns self to chain."""
        self.name = name
        return self

    def mark_output(self) -> "Tensor":
        check(lib.gs_tensor_set_flags(self.ptr, lib.GS_FLAG_OUTPUT))
        return self

    def __repr__(self) -> str:
        return f"Tensor({self.name or '?'}, {self.dtype.name}, ne={self.shape}, op={self.op})"

    # ---- data ----------------------------------------------------------------------------
    @property
    def has_data(self) -> bool:
        return bool(self.describe().has_data)

    def write(self, array, offset: int = 0) -> None:
        """Copy host data into the tensor (no intermediate copy when dtype and layout match)."""
        want = numpy_dtype(self.dtype)
        if isinstance(array, (bytes, bytearray, memoryview)):
            arr = np.frombuffer(array, np.uint8)  # raw bytes, e.g. straight from a GGUF mmap
        elif isinstance(array, np.ndarray) and array.dtype == np.uint8:
            arr = np.ascontiguousarray(array)     # no ggml type has uint8 elements: raw bytes
        elif want is None:
            arr = np.ascontiguousarray(array).view(np.uint8)
        else:
            arr = np.ascontiguousarray(array, dtype=want)
        if offset == 0 and arr.nbytes != self.nbytes:
            raise InvalidArgumentError(
                f"tensor '{self.name}' {self.dtype.name}{self.shape} holds {self.nbytes} bytes, "
                f"the array {arr.dtype}{arr.shape} has {arr.nbytes}")
        check(lib.gs_tensor_write(self.ptr, ffi.from_buffer(arr), offset, arr.nbytes), f"write '{self.name}'")

    def read(self) -> np.ndarray:
        """The data as numpy, numpy-order shape; quantized types come back as raw uint8 rows."""
        d = self.describe()
        if not d.is_contiguous:
            raise InvalidArgumentError(f"tensor '{self.name}' is not contiguous: read .cont() instead")
        ne = list(d.ne)
        dt = numpy_dtype(self.dtype)
        if dt is None:
            ne[0] = traits(self.dtype).type_size * ne[0] // traits(self.dtype).block_size
            dt = np.dtype(np.uint8)
        out = np.empty(tuple(reversed(ne)), dtype=dt)
        check(lib.gs_tensor_read(self.ptr, ffi.from_buffer(out), 0, out.nbytes), f"read '{self.name}'")
        n = max(1, d.n_dims)
        return out.reshape(tuple(reversed(ne[:n])))

    def numpy(self) -> np.ndarray:
        return self.read()

    # ---- helpers for op wrappers ---------------------------------------------------------
    def _unary(self, fn, what: str) -> "Tensor":
        ctx = _ctx_for(self)
        return Tensor(ctx, check_ptr(fn(ctx.ptr, self.ptr), what))

    def _binary(self, fn, other: "Tensor", what: str) -> "Tensor":
        ctx = _ctx_for(self, other)
        return Tensor(ctx, check_ptr(fn(ctx.ptr, self.ptr, other.ptr), what))

    def __add__(self, other: "Tensor") -> "Tensor":
        return self.add(other)

    def __sub__(self, other: "Tensor") -> "Tensor":
        return self.sub(other)

    def __mul__(self, other) -> "Tensor":
        return self.scale(float(other)) if isinstance(other, (int, float)) else self.mul(other)

    def __truediv__(self, other: "Tensor") -> "Tensor":
        return self.div(other)


class Graph:
    """A compute graph over a Context, expanded from its outputs."""

    def __init__(self, ctx: Context, outputs: Iterable[Tensor], max_nodes: int):
        self.ctx = ctx
        self.ptr = check_ptr(lib.gs_graph_new(ctx.ptr, max_nodes), "graph")
        self.outputs = list(outputs)
        for t in self.outputs:
            self.add(t)

    def add(self, t: Tensor) -> None:
        """Expand the graph to compute `t` (kept alive as an output)."""
        check(lib.gs_tensor_set_flags(t.ptr, lib.GS_FLAG_OUTPUT))
        check(lib.gs_graph_expand(self.ptr, t.ptr), f"expand graph with '{t.name}'")

    def expand(self, t: Tensor) -> None:
        """Add `t` without marking it an output (e.g. a KV-cache write)."""
        check(lib.gs_graph_expand(self.ptr, t.ptr), f"expand graph with '{t.name}'")

    @property
    def n_nodes(self) -> int:
        return lib.gs_graph_n_nodes(self.ptr)

    def node(self, i: int) -> Tensor:
        return Tensor(self.ctx, check_ptr(lib.gs_graph_node(self.ptr, i), "graph node"))

    def tensor(self, name: str) -> Tensor | None:
        ptr = lib.gs_graph_tensor(self.ptr, name.encode())
        return None if ptr == ffi.NULL else Tensor(self.ctx, ptr)

    def nodes(self) -> list[Tensor]:
        return [self.node(i) for i in range(self.n_nodes)]


from . import ops as _ops  # noqa: E402  (attaches the op methods to Tensor)

_ops.attach(Tensor)
