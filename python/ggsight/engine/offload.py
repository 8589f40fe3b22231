"""Loading a model across devices as plan_placement decided: each text layer's weights and K/V on
its device, the output layer with it, the vision tower on its own device, and one scheduler over
the backends involved (the CPU last: it holds the input layer and runs what others cannot).

Devices are the ones ggml lists (GPU plug-ins, RPC servers added with rpc=[...]) besides the CPU.
Nothing moves when no such device exists or n_gpu_layers is 0: the model stays as loaded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgumentError
from ..ggml import Backend, Device, GGUFFile, Weights, cpu_device, devices, load_weights, merge_weights, rpc
from .memory import free_memory
from .placement import OUTPUT_TENSORS, DeviceBudget, Placement

_BLOCK = re.compile(r"blk\.(\d+)\.")


def accelerators(rpc_endpoints=None, n_gpu_layers=None) -> list[Device]:
    """Local GPUs and the devices of the RPC servers given (checked before use); none for
    n_gpu_layers=0, and a refusal when layers are asked for and there is nothing to put them on."""
    if n_gpu_layers == 0:
        return []
    # RPC servers are this load's own choice: ones an earlier load added stay out of it. Devices
    # of type "accel" (ggml's BLAS backend) compute on host memory and hold no layers; they are not
    # scheduled yet. Tried: with ggml-blas first in the scheduler, a product moved to BLAS needs its
    # weight read back, which ggml's repacked CPU buffers cannot do (NULL get_tensor: a crash);
    # without repacking it runs, but the compute buffer then belongs to BLAS and the planner's
    # per-device figures and tests need to follow.
    servers = rpc.connect(rpc_endpoints) if rpc_endpoints else []
    accel = [d for d in devices() if d.type in ("gpu", "igpu") and d.backend != "RPC"] + servers
    if n_gpu_layers and not accel:
        raise InvalidArgumentError(f"n_gpu_layers={n_gpu_layers!r}, but no GPU or RPC device was found "
                                   "(`ggsight info` lists the backends and why one did not load)")
    return accel


def budgets(accel: list[Device]) -> list[DeviceBudget]:
    cpu = cpu_device()
    return ([DeviceBudget(d.name, free_memory(d), "rpc" if d.backend == "RPC" else "gpu") for d in accel]
            + [DeviceBudget(cpu.name, free_memory(cpu), "cpu")])


def device_names(n_gpu_layers, accel: list[Device]):
    """n_gpu_layers as plan_placement takes it: dict keys may also be RPC endpoints ('host:port')."""
    if not isinstance(n_gpu_layers, dict):
        return n_gpu_layers
    by_endpoint = {}
    for d in accel:
        if d.backend == "RPC":
            by_endpoint.setdefault(d.description, d.name)
    out = {}
    for key, count in n_gpu_layers.items():
        name = key if any(d.name == key for d in accel) else by_endpoint.get(_endpoint_or_self(key), key)
        out[name] = out.get(name, 0) + count if isinstance(count, int) else count
    return out


def _endpoint_or_self(key: str) -> str:
    try:
        return rpc.canonical(key)
    except InvalidArgumentError:   # a device name, not an endpoint
        return key


@dataclass
class Offload:
    placement: Placement
    by_name: dict            # device name -> Device

    def device_of_layer(self, il: int) -> Device:
        return self.by_name[self.placement.layers[il]]

    @property
    def used(self) -> list[Device]:
        """Devices that hold anything, accelerators first (in the planner's order), the CPU last."""
        names = list(dict.fromkeys([*self.placement.layers.values(), self.placement.output,
                                    *([self.placement.vision] if self.placement.vision else [])]))
        devs = [self.by_name[n] for n in names]
        return [d for d in devs if d.type != "cpu"] + [cpu_device()]

    def backends(self, cpu_backend: Backend) -> list[Backend]:
        return [Backend(d, n_threads=1) for d in self.used if d.type != "cpu"] + [cpu_backend]

    def layer_devices(self, n_layers: int) -> list[int]:
        return [self.device_of_layer(il).index for il in range(n_layers)]

    def text_weights(self, gguf: GGUFFile, use_mmap: bool, repack: bool) -> Weights:
        """The text model's tensors, each on its layer's (or the output's, or the CPU's) device."""
        cpu = cpu_device()
        groups: dict[str, list[str]] = {}
        for info in gguf.tensors:
            m = _BLOCK.match(info.name)
            where = (self.placement.layers[int(m.group(1))] if m else
                     self.placement.output if info.name in OUTPUT_TENSORS else cpu.name)
            groups.setdefault(where, []).append(info.name)
        out_dev = self.by_name[self.placement.output]
        main = load_weights(gguf, cpu, names=groups.pop(cpu.name), use_mmap=use_mmap, repack=repack,
                            head_copy=out_dev.type == "cpu")
        others = [load_weights(gguf, self.by_name[name], names=names, use_mmap=use_mmap, repack=False)
                  for name, names in groups.items()]
        aliases = {}
        if "output.weight" not in {i.name for i in gguf.tensors} and out_dev.type != "cpu":
            # a tied lm head: the CPU keeps the table for the input layer, the output device a copy
            aliases["output.weight"] = load_weights(gguf, out_dev, names=["token_embd.weight"], repack=False)
        return merge_weights(main, others, aliases)

    def vision_device(self) -> Device:
        return self.by_name[self.placement.vision] if self.placement.vision else cpu_device()
