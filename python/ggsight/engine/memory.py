"""Memory planner: what weights, the KV cache and the compute graphs take on each device, known
before the cache or any compute buffer is allocated.

- weights: the bytes of the tensors as they are placed. A file mapped on the CPU counts too: its
  pages become resident as the model reads them (plus a tower's bf16 tile copies, if any).
- kv: exactly what KVCache allocates, per cache kind: the same tensors, sized by ggml's rules (the
  device's alloc size, padded to its alignment), with no memory behind them; n_seq parallel
  sequences each get their own cells, so it grows with n_seq.
- compute: ggml's own reservation (ggml_backend_sched_reserve on a fresh scheduler) of the worst
  graphs: text for the largest micro-batch over full cache views, and the vision tower for its
  most costly image. A Model runs both on one scheduler, whose buffer ggml regrows to the larger
  graph (freeing the old one first), so compute is the larger of the two, not their sum.
"""
from __future__ import annotations

import mmap
import os
import platform
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from ..cache import BatchPlan, CellTable
from ..cache.kv import LayerKV
from ..errors import InvalidArgumentError, OutOfMemoryError
from ..ggml import (Backend, Buffer, Context, Device, DType, Scheduler, cpu_device, device_alignment,
                    device_alloc_size, devices, row_bytes, traits)
from .host_memory import TracedPeak, step_host_bytes
from .placement import DeviceBudget, Placement, model_costs, plan_placement
from .runner import MAX_NODES, _BuiltGraph  # the runner's own graph builder: the same graph, so the same size

# load()'s kv_type names
KV_TYPES = {"f16": DType.F16, "f32": DType.F32, "q8_0": DType.Q8_0, "q4_0": DType.Q4_0}
LIMIT_ENV = "GGSIGHT_MEMORY_LIMIT"  # bytes taken as free on every device (tests, containers, caution)
_UNITS = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}


def parse_size(text: str) -> int:
    """'1048576', '512M', '1.5GiB' -> bytes (units are powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise InvalidArgumentError(f"{LIMIT_ENV}={text!r}: give bytes, or a size like 512M or 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def available_ram() -> int | None:
    """What the kernel says can be allocated without swapping (page cache included)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def free_memory(device: Device | str) -> int:
    """Bytes free on a device (a Device or its name) for the cache and compute buffers:
    $GGSIGHT_MEMORY_LIMIT when set; for the CPU the available RAM (ggml reports its total); else
    what the device's backend reports."""
    limit = os.environ.get(LIMIT_ENV)
    if limit:
        return parse_size(limit)
    if isinstance(device, str):
        device = next(d for d in devices() if d.name == device)
    ram = available_ram() if device.type == "cpu" else None
    return ram if ram is not None else device.memory_free


def _limit_note() -> str:
    return f" ({LIMIT_ENV})" if os.environ.get(LIMIT_ENV) else ""


@dataclass(frozen=True)
class DeviceMemory:
    """Bytes on one device; total = weights + kv + compute."""
    weights: int
    kv: int
    compute: int
    total: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "total", self.weights + self.kv + self.compute)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes, overall and per device name. compute = max(compute_text, compute_vision) per device."""
    weights: int
    kv: int
    compute: int
    total: int
    per_device: dict            # device name -> DeviceMemory
    kv_by_kind: dict            # cache kind name -> bytes
    kv_layout: dict             # cache kind name -> (layers, cells per layer)
    compute_text: int
    compute_vision: int
    n_ctx: int
    n_batch: int                # the largest micro-batch (grown to hold a whole image)
    kv_type: str
    weights_mapped: bool        # the weights are used from the file's mapping
    n_seq: int = 1              # parallel sequences the cache holds
    # (n_ctx, kv_type) -> (kv, compute) bytes of the same model on its device, for suggestions
    price: object = field(default=None, repr=False, compare=False)
    placement: Placement | None = field(default=None, compare=False)  # with estimate(devices=...) only
    # Host memory beyond ggml's buffers: the tokenizer and file metadata (measured: the resident
    # growth while they were built) and each step's arrays (computed: masks and their temporaries,
    # logits, graph metadata). resident = what the process grows by when the weights, KV cache and
    # compute buffers are CPU memory: total + host.
    host: int = field(default=0, compare=False)         # partly measured: not part of equality
    host_parts: dict = field(default_factory=dict, compare=False)

    @property
    def resident(self) -> int:
        return self.total + self.host

    def check(self, what: str = "this model") -> None:
        """Raise OutOfMemoryError, naming the numbers and what to change, when a device's free
        memory cannot hold the KV cache and compute buffers (weights are placed already, and a
        mapped file's pages can be dropped and read again; cache and compute cannot)."""
        for name, d in self.per_device.items():
            free = free_memory(name)
            if d.kv + d.compute > free:
                raise OutOfMemoryError(self._refusal(name, d, free, what))

    def _refusal(self, name: str, d: DeviceMemory, free: int, what: str) -> str:
        seqs = f" with n_seq={self.n_seq}" if self.n_seq > 1 else ""
        head = (f"not enough memory on {name} for {what} at n_ctx={self.n_ctx}{seqs}: the KV cache needs "
                f"{human(d.kv)} ({self.kv_type}) and the compute buffers {human(d.compute)}, "
                f"{human(d.kv + d.compute)} in all, but {human(free)} is free{_limit_note()}.")
        if self.price is None:
            return head
        fits, smallest = [], None
        width = row_bytes(KV_TYPES[self.kv_type], 32)
        for kv_type in [t for t in ("f16", "q8_0", "q4_0") if row_bytes(KV_TYPES[t], 32) <= width]:
            # halve the context until it fits: the cache and the graphs' cache views both shrink
            n = self.n_ctx if kv_type != self.kv_type else self.n_ctx // 2
            while n >= 256 and (priced := self.price(n, kv_type)) is not None:
                kv, compute = priced
                smallest = f"n_ctx={n} with kv_type='{kv_type}' needs {human(kv + compute)}"
                if kv + compute <= free:
                    change = [f"n_ctx={n}"] * (n != self.n_ctx) + [f"kv_type='{kv_type}'"] * (kv_type != self.kv_type)
                    fits.append(f"{' and '.join(change)} ({human(kv + compute)})")
                    break
                n //= 2
        if not fits:
            least = f" ({smallest})" if smallest else ""
            return head + f" Nothing smaller fits either{least}: free memory or use a smaller model."
        return head + f" Load it with {', or '.join(fits)}; a smaller n_batch also shrinks the compute buffers."


class UnbackedKV:
    """Stands in for KVCache while the planner builds graphs: the same kinds, cell tables and
    tensors, placed over address space that is never written (so no memory is committed).

    Leaving the tensors without data is not an option: ggml's graph allocator would then count
    them as leaves of the graph and put the whole cache inside the compute buffer."""

    def __init__(self, kinds, head_dim: int, n_head_kv: list[int], n_ctx: int, n_batch: int, dtype: DType,
                 device: Device, n_seq: int = 1):
        self.kinds = kinds
        self.tables = {k: CellTable(k, n_ctx, n_batch, n_seq) for k in dict.fromkeys(kinds)}
        self.ctx = Context(2 * len(kinds) + 1, frozen=True)
        self.layers = [LayerKV(self.ctx, il, head_dim, n_head_kv[il], self.tables[k].n_cells, dtype)
                       for il, k in enumerate(kinds)]
        align = device_alignment(device.index)
        # what ggml_backend_alloc_ctx_tensors gives each tensor: its alloc size, padded
        self.sizes = [-(-device_alloc_size(device.index, t) // align) * align for L in self.layers for t in (L.k, L.v)]
        self.nbytes = sum(self.sizes)
        self.by_kind: dict[str, int] = {}
        for il, k in enumerate(kinds):
            self.by_kind[k.name] = self.by_kind.get(k.name, 0) + self.sizes[2 * il] + self.sizes[2 * il + 1]
        if device.host_ptr:
            self._memory = _untouched(self.nbytes)
            self.buffer = Buffer.from_host(device.index, self._memory, max(self.sizes))
            offset = 0
            for L, (k_size, v_size) in zip(self.layers, zip(self.sizes[::2], self.sizes[1::2])):
                self.buffer.place(L.k, offset)
                self.buffer.place(L.v, offset + k_size)
                offset += k_size + v_size
        else:  # a device that cannot use host memory: the real allocation is the only way
            self.buffer = Buffer.for_context(self.ctx, device.index)


def _untouched(size: int):
    """Anonymous memory that costs nothing until written (pages are committed on first touch)."""
    if os.name == "nt":
        return mmap.mmap(-1, size)
    # Linux: MAP_NORESERVE (0x4000 on these) keeps a cache larger than RAM + swap mappable, so
    # the planner can still report it instead of failing to map it
    noreserve = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") and platform.machine()
                        in ("x86_64", "aarch64", "i686", "riscv64") else 0)
    try:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | noreserve)
    except OSError as e:
        raise OutOfMemoryError(f"the KV cache ({human(size)}) does not fit this machine's address space: {e}") from None


def worst_text_batch(net, kv, n_tokens: int, n_embd_images: int = 0) -> BatchPlan:
    """The largest micro-batch: n_tokens tokens, one output row (what generation asks for; the
    every-position logits of Model.evaluate() add n_vocab * 4 bytes per token), every cache kind
    viewed whole; with a tower, every row an image row (the most that input can take)."""
    plan = BatchPlan(np.zeros(n_tokens, np.int32), np.zeros(n_tokens, np.int32), np.array([n_tokens - 1], np.int32))
    for kind, table in kv.tables.items():
        plan.masks[kind] = np.broadcast_to(np.float16(0), (n_tokens, table.n_cells))  # only the shape is read
    if n_embd_images:
        plan.image_rows = np.broadcast_to(np.float32(0), (n_tokens, n_embd_images))
        plan.embd_index = np.zeros(n_tokens, np.int32)
    if getattr(net, "rope_sections", None) is not None:
        plan.rope_positions = np.zeros((4, n_tokens), np.int32)
    return plan


class _ReserveOnly:
    """Takes the scheduler's place in a tower's encode(): reserves the graph it builds, runs nothing."""

    def __init__(self, sched: Scheduler):
        self.sched = sched

    def run(self, graph, inputs=()):
        self.sched.reserve(graph)
        return [None] * len(graph.outputs)


def _reserve(build, device: Device) -> int:
    backend = Backend(device, n_threads=1)
    sched = Scheduler([backend])
    build(sched)
    return sched.buffer_size(backend)


def _weight_bytes(w) -> int:
    """Bytes the weights make resident. A table that got its own copy for the lm head (alias_of)
    is then only looked up, row by row, from the mapped file: its pages mostly stay on disk."""
    lookup_only = sum(w.gguf.tensor(src).nbytes for src in set(w.alias_of.values())) if w.mapped else 0
    return w.nbytes - lookup_only


def _tower_bytes(images, tile_bytes: int | None = None) -> int:
    """The tower's weights plus the tile copies of its bf16 matrices: those bound at load, or
    `tile_bytes`, what a full load would bind (a plan-only load binds none)."""
    weights = images.vision.binder.weights
    return weights.nbytes + (weights.tiles_nbytes if tile_bytes is None else tile_bytes)


def check_n_seq(n_seq, n_batch: int) -> None:
    if isinstance(n_seq, bool) or not isinstance(n_seq, int) or n_seq < 1:
        raise InvalidArgumentError(f"n_seq must be a whole number of sequences, at least 1, not {n_seq!r}")
    if n_seq > n_batch:  # a decode step carries one token of every sequence in one micro-batch
        raise InvalidArgumentError(f"n_seq={n_seq} is more than n_batch={n_batch}: raise n_batch or lower n_seq")


def _kv_type_fits(net, kv_type: str) -> bool:
    # the cache is viewed head by head, so a quantised block may not straddle two heads
    return net.config.head_dim % traits(KV_TYPES[kv_type]).block_size == 0


def _text(net, images, n_ctx: int, n_tokens: int, kv_type: str, device: Device,
          n_seq: int = 1) -> tuple[UnbackedKV, int]:
    c = net.config
    kinds = net.cache_kinds()
    kv = UnbackedKV(kinds, c.head_dim, [c.n_head_kv] * len(kinds), n_ctx, n_tokens, KV_TYPES[kv_type], device, n_seq)
    batch = worst_text_batch(net, kv, n_tokens, c.n_embd if images else 0)
    return kv, _reserve(lambda s: s.reserve(_BuiltGraph(net, kv, batch, MAX_NODES).graph), device)


def plan(net, images=None, *, n_ctx: int, n_batch: int, kv_type: str = "f16",
         device: Device | None = None, n_seq: int = 1, devices: list[DeviceBudget] | None = None,
         n_gpu_layers: int | dict | None = None, host_measured: dict | None = None,
         tile_bytes: int | None = None) -> MemoryEstimate:
    """The estimate for a model whose weights are placed (`net`, and `images` its image glue or
    None), as Model would run it; n_batch as Model keeps it (at most n_ctx); n_seq sequences
    (their decode steps run as one micro-batch of n_seq <= n_batch tokens, inside the worst case).
    With `devices` (simulated or real budgets), also where each layer would go: see placement.py.
    tile_bytes: the tower's tile copies, where its weights were loaded without them (estimate())."""
    if kv_type not in KV_TYPES:
        raise InvalidArgumentError(f"kv_type must be one of {', '.join(KV_TYPES)}, not {kv_type!r}")
    if not _kv_type_fits(net, kv_type):
        block = traits(KV_TYPES[kv_type]).block_size
        raise InvalidArgumentError(f"kv_type {kv_type!r} stores blocks of {block} values; this model's attention "
                                   f"heads have {net.config.head_dim}: use f16 or f32")
    check_n_seq(n_seq, n_batch)
    device = device or cpu_device()

    def micro_batch(n: int) -> int:
        # as Model: an image never splits, so the batch (and a sliding-window ring) holds one whole
        return max(min(n_batch, n), images.largest_group if images else 0)
    kv, text = _text(net, images, n_ctx, micro_batch(n_ctx), kv_type, device, n_seq)
    vision = image_host = 0
    if images:
        # the tower's own host inputs (position tables, window masks, ...) are built for real by
        # the reservation, so their peak is measured; preprocessing holds ~3 copies of the view
        with TracedPeak() as traced:
            view = images.largest_view()
            vision = _reserve(lambda s: images.embed(_ReserveOnly(s), view), device)
        image_host = traced.peak + 2 * view.nbytes
    tower = _tower_bytes(images, tile_bytes) if images else 0
    weights = _weight_bytes(net.binder.weights) + tower
    d = DeviceMemory(weights, kv.nbytes, max(text, vision))

    def price(n: int, kv_type: str) -> tuple[int, int] | None:
        if not _kv_type_fits(net, kv_type):
            return None
        other, text = _text(net, images, n, micro_batch(n), kv_type, device, n_seq)
        return other.nbytes, max(text, vision)
    kinds = net.cache_kinds()
    layout = {k.name: (kinds.count(k), t.n_cells) for k, t in kv.tables.items()}
    placed = None
    if devices is not None:
        costs = layer_costs(net, kv)
        # a device given without a compute figure is charged the one measured here (a device in a
        # split runs only its part of the graph, so this errs on the safe side)
        budgets = [b if b.compute else DeviceBudget(b.name, b.free, b.kind, d.compute) for b in devices]
        placed = plan_placement(costs.layers, costs.output, tower, budgets,
                                n_gpu_layers=n_gpu_layers, input_bytes=costs.input, mapped=bool(net.binder.weights.mapped))
    host = dict(host_measured or {})
    host.update(step_host_bytes(net, kv, micro_batch(n_ctx), net.binder.weights["token_embd.weight"].ne[1]))
    if image_host:  # an image's arrays are gone before the text steps' masks are built
        host["image step"] = max(0, image_host - host["masks"])
    return MemoryEstimate(d.weights, d.kv, d.compute, d.total, {device.name: d}, kv.by_kind, layout, text, vision,
                          n_ctx, micro_batch(n_ctx), kv_type, bool(net.binder.weights.mapped), n_seq, price, placed,
                          sum(host.values()), host)


def layer_costs(net, kv: UnbackedKV):
    """The text model's ModelCosts: weights by GGUF tensor name, KV as the planner sized it."""
    w = net.binder.weights
    return model_costs({n: w.gguf.tensor(n).nbytes for n in w.tensors if n not in w.alias_of},
                       [k + v for k, v in zip(kv.sizes[::2], kv.sizes[1::2])])


def estimate(path, *, n_ctx: int = 4096, n_batch: int = 512, kv_type: str = "f16", mmproj=None,
             image_options: dict | None = None, n_seq: int = 1, devices: list[DeviceBudget] | None = None,
             n_gpu_layers: int | dict | None = None) -> MemoryEstimate:
    """Weights, KV cache and compute bytes `load(path, ...)` with these arguments would take, overall
    and per device. The files are opened and their weights mapped (nothing is copied); no cache
    is allocated and no graph computed. With `devices`, .placement says which device would take
    each layer, the output layer and the vision tower (the CPU must be among them)."""
    from .loader import LoadOptions, load_model   # the loader plans with this module
    opts = LoadOptions(n_ctx=n_ctx, n_batch=n_batch, kv_type=kv_type, mmproj=mmproj,
                       image_options=dict(image_options or {}), n_seq=n_seq, n_gpu_layers=n_gpu_layers)
    return load_model(path, opts, plan_only=True, devices=devices).memory
