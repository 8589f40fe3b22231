"""Devices, backends, buffers and the scheduler."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .._native import check, check_ptr, cstr, ffi, lib, owned
from ..errors import InvalidArgumentError
from .tensor import Context, Graph, Tensor

DEVICE_TYPES = {lib.GS_DEVICE_CPU: "cpu", lib.GS_DEVICE_GPU: "gpu", lib.GS_DEVICE_IGPU: "igpu",
                lib.GS_DEVICE_ACCEL: "accel", lib.GS_DEVICE_META: "meta"}


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    description: str
    type: str            # cpu, gpu, igpu, accel
    backend: str         # registry that owns it (CPU, CUDA, Metal, ...)
    memory_free: int
    memory_total: int
    host_ptr: bool       # can wrap host memory (mmap) without copying
    device_id: str = ""


# RPC devices as last read (ggml_rpc.connect() refreshes them). ggml's RPC client aborts the
# process when it asks a server that is gone, so listing devices never asks RPC servers again.
rpc_devices: dict[int, Device] = {}


def device(index: int, refresh: bool = False) -> Device:
    if index in rpc_devices and not refresh:
        return rpc_devices[index]
    info = ffi.new("gs_device_info *")
    check(lib.gs_device_info_get(index, info))
    return Device(index, cstr(info.name), cstr(info.description), DEVICE_TYPES.get(info.type, "?"),
                  cstr(info.backend), info.memory_free, info.memory_total,
                  bool(info.caps_buffer_from_host_ptr), cstr(info.device_id))


def devices() -> list[Device]:
    return [device(i) for i in range(lib.gs_device_count())]


def cpu_device() -> Device:
    for i in range(lib.gs_device_count()):  # the CPU is registered first: no remote device is asked
        d = device(i)
        if d.type == "cpu":
            return d
    raise InvalidArgumentError("this build has no CPU device")


def extra_buffer_types(device_index: int) -> list[str]:
    return [cstr(lib.gs_device_extra_buft_name(device_index, i))
            for i in range(lib.gs_device_extra_buft_count(device_index))]


def extra_supports_matmul(device_index: int, extra: int, weight: Tensor) -> bool:
    return bool(lib.gs_extra_buft_supports_matmul(device_index, extra, weight.ptr))


def device_alignment(device_index: int) -> int:
    """Alignment of tensors in the device's default buffer type."""
    return lib.gs_device_alignment(device_index)


def device_alloc_size(device_index: int, t: Tensor) -> int:
    """Bytes a tensor like `t` takes in the device's default buffer type (before alignment)."""
    return lib.gs_device_alloc_size(device_index, t.ptr)


def default_threads() -> int:
    """One thread per physical core this process may run on, as llama.cpp's default (hyper-threads
    share a core's vector units, so a second thread per core slows ggml's kernels; and the same
    thread count as llama.cpp keeps thread-count-dependent reductions, such as flash attention
    split over a long cache, the same as llama.cpp's)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
    return max(1, physical_cores(allowed))


def physical_cores(cpus: list[int], sysfs: str = "/sys/devices/system/cpu") -> int:
    """How many distinct cores the logical CPUs `cpus` lie on (their sets of thread siblings);
    len(cpus) where the topology cannot be read."""
    cores = set()
    for cpu in cpus:
        try:
            with open(f"{sysfs}/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            return len(cpus)
    return len(cores)


class Backend:
    """An initialised backend (one stream) on a device."""

    def __init__(self, device: Device | int | None = None, n_threads: int | None = None):
        dev = cpu_device() if device is None else device
        self.device_index = dev.index if isinstance(dev, Device) else int(dev)
        self.ptr = owned(check_ptr(lib.gs_backend_new(self.device_index, ffi.NULL), "backend"), lib.gs_backend_free)
        self.name = cstr(lib.gs_backend_name(self.ptr))
        self.n_threads = 0
        self.set_threads(n_threads or default_threads())

    def set_threads(self, n: int) -> None:
        check(lib.gs_backend_set_n_threads(self.ptr, n))
        self.n_threads = n

    def supports(self, t: Tensor) -> bool:
        return bool(lib.gs_backend_supports(self.ptr, t.ptr))

    def compute(self, graph: Graph) -> None:
        """Run a graph whose tensors all have data already (no scheduler)."""
        check(lib.gs_graph_compute(self.ptr, graph.ptr), "compute")

    def __repr__(self) -> str:
        return f"Backend({self.name}, threads={self.n_threads})"


class Buffer:
    """Backend memory holding tensor data. Keeps alive whatever memory it wraps."""

    def __init__(self, ptr, keep=None):
        self.ptr = ptr
        self._keep = keep

    @classmethod
    def for_context(cls, ctx: Context, device_index: int = 0, host: bool = False) -> "Buffer":
        """Allocate every tensor of `ctx` that has no data yet."""
        buf = cls(owned(check_ptr(lib.gs_buffer_alloc_context(ctx.ptr, device_index, int(host)),
                                  "allocate context"), lib.gs_buffer_free))
        ctx.buffers.append(buf)
        return buf

    @classmethod
    def for_context_extra(cls, ctx: Context, device_index: int, extra: int) -> "Buffer":
        """Allocate a context's tensors in one of the device's extra (repacking) buffer types."""
        buf = cls(owned(check_ptr(lib.gs_buffer_alloc_context_extra(ctx.ptr, device_index, extra),
                                  "allocate repacked weights"), lib.gs_buffer_free))
        ctx.buffers.append(buf)
        return buf

    @classmethod
    def new(cls, device_index: int, size: int, host: bool = False) -> "Buffer":
        return cls(owned(check_ptr(lib.gs_buffer_new(device_index, size, int(host)), "allocate buffer"),
                         lib.gs_buffer_free))

    @classmethod
    def from_host(cls, device_index: int, memory, max_tensor: int = 0) -> "Buffer":
        """Wrap host memory (an mmap, a bytearray, a numpy array) without copying it."""
        cbuf = ffi.from_buffer(memory)
        ptr = check_ptr(lib.gs_buffer_from_host_ptr(device_index, cbuf, len(cbuf), max_tensor), "host buffer")
        return cls(owned(ptr, lib.gs_buffer_free, memory, cbuf), keep=(memory, cbuf))

    def place(self, t: Tensor, offset: int) -> None:
        check(lib.gs_buffer_place(self.ptr, t.ptr, offset), f"place '{t.name}'")
        if not any(b is self for b in t.ctx.buffers):  # the context keeps its data alive
            t.ctx.buffers.append(self)

    @property
    def base_address(self) -> int:
        return int(ffi.cast("uintptr_t", ffi.from_buffer(self._keep[0]))) if self._keep else 0

    @property
    def size(self) -> int:
        return lib.gs_buffer_size(self.ptr)

    @property
    def alignment(self) -> int:
        return lib.gs_buffer_alignment(self.ptr)

    @property
    def is_host(self) -> bool:
        return bool(lib.gs_buffer_is_host(self.ptr))

    def clear(self, value: int = 0) -> None:
        check(lib.gs_buffer_clear(self.ptr, value))

    def mark_weights(self) -> None:
        check(lib.gs_buffer_mark_weights(self.ptr))


class Scheduler:
    """ggml_backend_sched over backends (CPU last): places, allocates and runs graphs."""

    def __init__(self, backends: Sequence[Backend] | Backend | None = None, max_nodes: int = 8192,
                 op_offload: bool = True):
        if backends is None:
            backends = [Backend()]
        elif isinstance(backends, Backend):
            backends = [backends]
        self.backends = list(backends)
        arr = ffi.new("gs_backend *[]", [b.ptr for b in self.backends])
        ptr = check_ptr(lib.gs_sched_new(arr, len(self.backends), max_nodes, int(op_offload)), "scheduler")
        self.ptr = owned(ptr, lib.gs_sched_free, *self.backends)
        self.max_nodes = max_nodes
        self.allocated: Graph | None = None   # the graph whose tensors the compute buffers hold now

    def reserve(self, graph: Graph) -> None:
        check(lib.gs_sched_reserve(self.ptr, graph.ptr), "reserve")

    def alloc(self, graph: Graph) -> None:
        check(lib.gs_sched_alloc(self.ptr, graph.ptr), "allocate graph")
        self.allocated = graph

    def ensure_allocated(self, graph: Graph) -> None:
        """Allocate `graph` again if another graph (a vision tower's, say) used the buffers since."""
        if self.allocated is not graph:
            self.alloc(graph)

    def compute(self, graph: Graph) -> None:
        check(lib.gs_sched_compute(self.ptr, graph.ptr), "compute")

    def run(self, graph: Graph, inputs: Mapping[Tensor, object] | Iterable = ()) -> list:
        """Allocate `graph`, write `inputs` ({tensor: array}), compute, read the outputs."""
        self.alloc(graph)
        items = inputs.items() if isinstance(inputs, Mapping) else inputs
        for t, value in items:
            t.write(value)
        self.compute(graph)
        return [t.read() for t in graph.outputs]

    def set_backend(self, t: Tensor, backend: Backend) -> None:
        check(lib.gs_sched_set_tensor_backend(self.ptr, t.ptr, backend.ptr))

    def buffer_size(self, backend: Backend) -> int:
        return lib.gs_sched_buffer_size(self.ptr, backend.ptr)

    @property
    def n_splits(self) -> int:
        return lib.gs_sched_n_splits(self.ptr)

    def reset(self) -> None:
        check(lib.gs_sched_reset(self.ptr))
        self.allocated = None
