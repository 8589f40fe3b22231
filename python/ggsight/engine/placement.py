"""Which device holds each layer, the output layer and the vision tower: a pure decision over byte
counts, made before anything is allocated. Nothing here touches a backend, so it is tested with
simulated devices; loading does not follow it yet (only a CPU is tested here).

Rules of plan_placement (llama.cpp's and Ollama's where they are sensible; differences say why):

1. Budget: a device can take free - margin - compute, its compute buffer counted once the device
   holds anything. margin = max(margin_min, margin_frac * free), 256 MiB and 5% by default: a
   backend's own context, cuBLAS/hipBLAS workspaces and the driver's fragmentation take memory that
   no buffer size shows (Ollama reserves ~457 MiB per CUDA GPU for this; llama.cpp's --fit leaves
   1 GiB). The CPU gets no margin: its free figure is already MemAvailable, not total RAM.
2. Order: GPUs by free memory, largest first (as Ollama; equal ones keep the caller's order), then
   RPC devices, then the CPU. RPC comes after the local GPUs because every device boundary sends the
   hidden state across once per micro-batch, which over a network is latency on every token.
3. Layers go last first, as llama.cpp offloads the last n_gpu_layers: the first device takes the
   last layers, each device a contiguous range, and what no device can take stays on the CPU. We
   fill devices in turn rather than split in proportion to free memory (llama.cpp's default tensor
   split): a proportional split leaves room unused when devices differ in size, and with a
   pipeline of one sequence the devices run one after another anyway, so evening them out buys
   nothing.
4. Output layer (lm head and final norm): goes to the device of the last layer when it fits there.
   When every layer can be offloaded with it, room for it is kept; otherwise layers come first
   (llama.cpp offloads the output only after every layer). `shared` bytes (a tied embedding table
   the CPU holds as the input layer) cost nothing on the CPU and a copy elsewhere (llama.cpp
   duplicates it).
5. Vision tower: on its own merits, after the text: the GPU (else RPC device) with the most room
   left where it fits, whichever device the output went to, else the CPU. Ollama ties it to the
   output layer's device, so a big GPU full of text leaves a small idle one unused for the tower.
6. n_gpu_layers overrides the count: an int is the number of layers on GPU/RPC devices in total
   (filled as in 3; more than the model has means all, like llama.cpp's -ngl 999; the output is not
   counted, it follows rule 4), a dict gives {device name: layers} (the same order and last-first
   ranges). An override that does not fit raises OutOfMemoryError naming the device and the bytes.
7. The CPU takes the rest: input layer, layers, output and tower it got, and its compute buffer;
   weights used from a mapped file (`mapped`) are not counted, as MemoryEstimate.check() does.
   When even that exceeds its free memory, OutOfMemoryError names the sizes. Nothing is allocated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InvalidArgumentError, OutOfMemoryError

MiB = 2 ** 20
_KIND_ORDER = {"gpu": 0, "rpc": 1}
_BLOCK = re.compile(r"blk\.(\d+)\.")
OUTPUT_TENSORS = ("output.weight", "output_norm.weight", "output.bias", "output_norm.bias")


@dataclass(frozen=True)
class LayerCost:
    """Bytes one layer (or the output layer) needs on the device that holds it."""
    weights: int
    kv: int = 0
    shared: int = 0     # of weights, bytes the CPU already holds (a tied table): free there, a copy elsewhere

    @property
    def total(self) -> int:
        return self.weights + self.kv


@dataclass(frozen=True)
class DeviceBudget:
    name: str
    free: int           # bytes free now
    kind: str = "gpu"   # "gpu", "rpc" or "cpu"
    compute: int = 0    # the compute buffer it needs once it holds anything


@dataclass(frozen=True)
class Placement:
    layers: dict        # layer index -> device name
    output: str         # device of the output layer
    vision: str | None  # device of the vision tower (None: no tower)
    bytes: dict         # device name -> bytes it would hold (weights + kv + compute)
    budget: dict = field(default_factory=dict)  # device name -> bytes it may hold (free - margin)
    input: str = ""     # device of the input layer (token embeddings): always the CPU

    def ranges(self) -> dict:
        """device name -> [(first, last)] layer ranges, for printing."""
        out: dict = {}
        for il in sorted(self.layers):
            spans = out.setdefault(self.layers[il], [])
            if spans and spans[-1][1] == il - 1:
                spans[-1] = (spans[-1][0], il)
            else:
                spans.append((il, il))
        return out


def _human(n: int) -> str:
    from .memory import human  # memory.py imports this module; human() is only needed for messages
    return human(n)


def margin(free: int, frac: float = 0.05, minimum: int = 256 * MiB) -> int:
    return max(minimum, int(free * frac))


def plan_placement(layers: list[LayerCost], output: LayerCost, vision: int, devices: list[DeviceBudget], *,
                   n_gpu_layers: int | dict | None = None, input_bytes: int = 0, mapped: bool = False,
                   margin_frac: float = 0.05, margin_min: int = 256 * MiB) -> Placement:
    """Layer -> device, output and vision devices, and bytes per device (the rules are the module's
    docstring). `vision` is the tower's bytes (0: none); `input_bytes` what stays on the CPU anyway
    (the token embedding table, as llama.cpp keeps its input layer)."""
    cpus = [d for d in devices if d.kind == "cpu"]
    if len(cpus) != 1 or any(d.kind not in ("gpu", "rpc", "cpu") for d in devices):
        raise InvalidArgumentError("devices: give exactly one 'cpu' and any number of 'gpu' or 'rpc' devices")
    cpu = cpus[0]
    accel = sorted((d for d in devices if d.kind != "cpu"), key=lambda d: (_KIND_ORDER[d.kind], -d.free))
    budget = {d.name: d.free - margin(d.free, margin_frac, margin_min) for d in accel} | {cpu.name: cpu.free}
    n = len(layers)
    counts = _override_counts(n_gpu_layers, accel, n)   # {name: layers} for a dict, else None
    total = sum(counts.values()) if counts is not None else n if n_gpu_layers is None else min(n_gpu_layers, n)

    def fill(reserve: int) -> tuple[dict, dict]:
        """Up to `total` layers, last first, over `accel` in turn; `reserve` bytes kept on the first."""
        where, used, il = {}, {d.name: 0 for d in accel}, n - 1
        for i, d in enumerate(accel):
            want, taken, start = (counts.get(d.name, 0) if counts is not None else total), 0, il
            while il >= 0 and taken < want and len(where) < total:
                need = layers[il].total + (d.compute if not used[d.name] else 0)
                if used[d.name] + need > budget[d.name] - (reserve if i == 0 else 0):
                    if counts is not None:
                        raise OutOfMemoryError(_refusal(d, layers, start - want + 1, start, budget[d.name]))
                    break
                where[il], used[d.name], il, taken = d.name, used[d.name] + need, il - 1, taken + 1
        return where, used

    where, used = fill(output.total if counts is None else 0)  # room kept for the output if all is offloaded
    if counts is None and len(where) < total:
        where, used = fill(0)  # not everything offloads: layers before the output, as llama.cpp
    if n_gpu_layers is not None and len(where) < total:  # an int that the GPUs cannot hold
        left = ", ".join(f"{d.name} {_human(max(budget[d.name] - used[d.name], 0))}" for d in accel) or "no GPU"
        lo, hi = n - total, n - len(where) - 1
        raise OutOfMemoryError(f"n_gpu_layers={n_gpu_layers}: layers {lo}-{hi} "
                               f"({_human(sum(c.total for c in layers[lo:hi + 1]))}) do not fit on the GPUs "
                               f"after the last {len(where)}; room left: {left}")

    def room(name: str, nbytes: int) -> int | None:
        """Bytes left on an accelerator after adding nbytes (its compute counted if new), or None."""
        d = next(x for x in accel if x.name == name)
        left = budget[name] - used[name] - nbytes - (d.compute if not used[name] else 0)
        return left if left >= 0 else None

    out_dev = cpu.name
    if n - 1 in where and room(where[n - 1], output.total) is not None:
        out_dev = where[n - 1]
        used[out_dev] += output.total
    vis_dev = None
    if vision:
        fits = [(d.kind == "gpu", left, d.name) for d in accel if (left := room(d.name, vision)) is not None]
        vis_dev = max(fits, key=lambda f: (f[0], f[1]))[2] if fits else cpu.name
        if vis_dev != cpu.name:
            d = next(x for x in accel if x.name == vis_dev)
            used[vis_dev] += vision + (d.compute if not used[vis_dev] else 0)

    on_cpu = [il for il in range(n) if il not in where]
    for il in on_cpu:
        where[il] = cpu.name
    w_cpu = input_bytes + sum(layers[il].weights for il in on_cpu)
    w_cpu += (output.weights - output.shared) if out_dev == cpu.name else 0
    w_cpu += vision if vis_dev == cpu.name else 0
    kv_cpu = sum(layers[il].kv for il in on_cpu) + (output.kv if out_dev == cpu.name else 0)
    cpu_bytes = w_cpu + kv_cpu + cpu.compute
    counted = kv_cpu + cpu.compute + (0 if mapped else w_cpu)
    if counted > cpu.free:
        gpus = ", ".join(f"{d.name} {_human(used[d.name])} of {_human(max(budget[d.name], 0))}" for d in accel)
        raise OutOfMemoryError(
            f"the model does not fit: after the GPUs ({gpus or 'none'}) the CPU would hold {len(on_cpu)} layers, "
            f"{_human(w_cpu)} of weights{' (mapped, not counted)' if mapped else ''}, {_human(kv_cpu)} of KV cache "
            f"and {_human(cpu.compute)} of compute buffers, {_human(counted)} against {_human(cpu.free)} free on "
            f"{cpu.name}: use a smaller n_ctx or kv_type, or a smaller model")
    sizes = {d.name: used[d.name] for d in accel} | {cpu.name: cpu_bytes}
    return Placement(dict(sorted(where.items())), out_dev, vis_dev, sizes, budget, cpu.name)


@dataclass(frozen=True)
class ModelCosts:
    """A text model cut as plan_placement takes it; sum of the parts' weights (less output.shared)
    + input == the weights the file holds for it."""
    layers: list            # [LayerCost] by layer index
    output: LayerCost
    input: int              # bytes that stay on the CPU: token embeddings and other tensors of no block


def model_costs(tensor_bytes: dict, kv_bytes: list[int]) -> ModelCosts:
    """Per-layer costs from tensor name -> bytes (blk.N.* is layer N) and the KV bytes of each layer
    (the cache's tensors, one entry per layer). A missing output.weight means the lm head is the
    token embedding table (tied, as in Gemma 3): the output layer then needs a copy of it off the CPU."""
    weights = [0] * len(kv_bytes)
    out = inp = 0
    for name, nbytes in tensor_bytes.items():
        if m := _BLOCK.match(name):
            weights[int(m.group(1))] += nbytes
        elif name in OUTPUT_TENSORS:
            out += nbytes
        else:
            inp += nbytes
    tied = 0 if "output.weight" in tensor_bytes else tensor_bytes.get("token_embd.weight", 0)
    return ModelCosts([LayerCost(w, kv) for w, kv in zip(weights, kv_bytes)], LayerCost(out + tied, 0, tied), inp)


def _override_counts(n_gpu_layers, accel: list[DeviceBudget], n: int) -> dict | None:
    if n_gpu_layers is None:
        return None
    if isinstance(n_gpu_layers, dict):
        unknown = sorted(set(n_gpu_layers) - {d.name for d in accel})
        if unknown:
            raise InvalidArgumentError(f"n_gpu_layers names {unknown}: not a GPU or RPC device here "
                                       f"({', '.join(d.name for d in accel) or 'none'})")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in n_gpu_layers.values()):
            raise InvalidArgumentError(f"n_gpu_layers: layers per device must be whole numbers >= 0: {n_gpu_layers}")
        if sum(n_gpu_layers.values()) > n:
            raise InvalidArgumentError(f"n_gpu_layers asks for {sum(n_gpu_layers.values())} layers; the model has {n}")
        return dict(n_gpu_layers)
    if isinstance(n_gpu_layers, bool) or not isinstance(n_gpu_layers, int) or n_gpu_layers < 0:
        raise InvalidArgumentError(f"n_gpu_layers must be a whole number >= 0 or a dict, not {n_gpu_layers!r}")
    return None


def _refusal(d: DeviceBudget, layers: list[LayerCost], lo: int, hi: int, usable: int) -> str:
    need = sum(c.total for c in layers[lo:hi + 1]) + d.compute
    return (f"n_gpu_layers puts {hi - lo + 1} layers ({lo}-{hi}) on {d.name}: they need {_human(need)} with its "
            f"{_human(d.compute)} compute buffer, but {_human(max(usable, 0))} is usable there "
            f"({_human(d.free)} free less a {_human(d.free - usable)} safety margin)")
