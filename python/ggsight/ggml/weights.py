"""Load a GGUF file's tensors into backend memory: mapped in place where the device can read
host memory (the CPU), copied otherwise."""
from __future__ import annotations

from typing import Callable, Iterable

from ..errors import InvalidArgumentError
from .backend import Buffer, Device, cpu_device, devices
from .gguf import GGUFFile, TensorInfo
from .tensor import Context, Tensor

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class Weights:
    """Tensors of one GGUF file on one device, by their GGUF names."""

    def __init__(self, gguf: GGUFFile, ctx: Context, tensors: dict[str, Tensor], buffer: Buffer, mapped: bool):
        self.gguf = gguf
        self.ctx = ctx
        self.tensors = tensors
        self.buffer = buffer
        self.mapped = mapped

    def __getitem__(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in {self.gguf.path}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str) -> Tensor | None:
        return self.tensors.get(name)

    @property
    def nbytes(self) -> int:
        return sum(self.gguf.tensor(n).nbytes for n in self.tensors)


def load_weights(gguf: GGUFFile, device: Device | int | None = None, *, names: Iterable[str] | None = None,
                 use_mmap: bool = True, progress: Progress | None = None) -> Weights:
    """Create a frozen context holding the file's tensors (or `names`) and give them data."""
    dev = cpu_device() if device is None else device
    dev = dev if isinstance(dev, Device) else devices()[int(dev)]
    infos: list[TensorInfo] = gguf.tensors if names is None else [gguf.tensor(n) for n in names]
    if not infos:
        raise InvalidArgumentError(f"{gguf.path}: no tensors to load")
    ctx = Context(len(infos) + 1, frozen=True)
    tensors = {i.name: ctx.new_tensor(i.shape, i.dtype, i.name) for i in infos}
    total = sum(i.nbytes for i in infos)
    # A file whose tensors honour the device's alignment can be used where it lies.
    if use_mmap and dev.host_ptr and gguf.mmap is not None and gguf.alignment % 32 == 0:
        buffer = Buffer.from_host(dev.index, gguf.mmap, max(i.nbytes for i in infos))
        buffer.mark_weights()
        for info in infos:
            buffer.place(tensors[info.name], info.abs_offset)
        if progress:
            progress(total, total)
        return Weights(gguf, ctx, tensors, buffer, mapped=True)
    buffer = Buffer.for_context(ctx, dev.index)
    buffer.mark_weights()
    done = 0
    for info in infos:
        tensors[info.name].write(gguf.tensor_data(info))
        done += info.nbytes
        if progress:
            progress(done, total)
    return Weights(gguf, ctx, tensors, buffer, mapped=False)
