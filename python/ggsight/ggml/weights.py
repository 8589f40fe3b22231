"""Load a GGUF file's tensors into backend memory: mapped in place where the device can read
host memory (the CPU), copied otherwise."""
from __future__ import annotations

import mmap
from typing import Callable, Iterable

from ..errors import InvalidArgumentError
from . import tiles as bf16_tiles, x16
from .backend import Buffer, Device, cpu_device, devices, extra_buffer_types, extra_supports_matmul
from .gguf import GGUFFile, TensorInfo
from .tensor import Context, Tensor

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class Weights:
    """Tensors of one GGUF file on one device, by their GGUF names."""

    def __init__(self, gguf: GGUFFile, ctx: Context, tensors: dict[str, Tensor], buffer: Buffer, mapped: bool,
                 repacked: "Weights | None" = None):
        self.gguf = gguf
        self.ctx = ctx
        self.repacked = repacked  # the part held in a repacking buffer, if any
        self.interleaved: Weights | None = None  # the part in ggsight's x16 layout, if any
        self.tiles: dict = {}     # name -> TiledMatrix: bf16 matrices bound to the AMX tile kernels
        self.tensors = tensors
        self.buffer = buffer
        self.mapped = mapped
        self.alias_of: dict[str, str] = {}   # see below
        self.parts: tuple = ()

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
        return sum(self.gguf.tensor(self.alias_of.get(n, n)).nbytes for n in self.tensors)

    @property
    def tiles_nbytes(self) -> int:
        """The tile copies' bytes (besides nbytes: the file's bytes stay mapped for other ops)."""
        return sum(t.nbytes for t in self.tiles.values())

    # alias_of: copies of a file tensor under another name -> that tensor's GGUF name (a tied lm
    # head's own copy of the embedding table, "output.weight", repacked or on another device);
    # parts: Weights of other devices merged into this one (kept alive with it)


def merge_weights(main: Weights, others: list[Weights], aliases: dict[str, Weights] | None = None) -> Weights:
    """One Weights over parts on several devices: `main` (the CPU part) takes the others' tensors;
    `aliases` {name: one-tensor Weights} adds a copy under another name (a tied embedding table
    read by the lm head on another device as 'output.weight')."""
    alias_of = dict(main.alias_of)
    for part in others:
        main.tensors.update(part.tensors)
        alias_of.update(part.alias_of)
    for name, part in (aliases or {}).items():
        (source, tensor), = part.tensors.items()
        main.tensors[name] = tensor
        alias_of[name] = part.alias_of.get(source, source)
    main.parts = tuple(others) + tuple((aliases or {}).values())
    main.alias_of = alias_of
    return main


def _is_lookup_table(name: str) -> bool:
    # Embedding tables are read with get_rows, which repacked layouts do not support.
    return "embd" in name


def _split_repackable(infos: list[TensorInfo], dev: Device) -> tuple[list[TensorInfo], list[TensorInfo], int]:
    """Weights that ggml's CPU repacking (interleaved quant blocks) can speed up, and the rest."""
    # ggml's "AMX" buffer type is skipped: its int8 tile kernels crash (SIGILL / SIGSEGV in
    # tinygemm_kernel_amx) on Sapphire Rapids here, in llama.cpp too; the interleaved
    # "CPU_REPACK" layouts are what llama.cpp users get elsewhere.
    extras = extra_buffer_types(dev.index)
    if dev.type != "cpu" or "CPU_REPACK" not in extras:
        return [], infos, -1
    extra = extras.index("CPU_REPACK")
    probe = Context(len(infos) + 1, frozen=True)
    repack, plain = [], []
    for info in infos:
        ok = (len(info.shape) >= 2 and not _is_lookup_table(info.name)
              and extra_supports_matmul(dev.index, extra, probe.new_tensor(info.shape, info.dtype)))
        (repack if ok else plain).append(info)
    return repack, plain, extra


def load_weights(gguf: GGUFFile, device: Device | int | None = None, *, names: Iterable[str] | None = None,
                 use_mmap: bool = True, repack: bool = True, head_copy: bool = True, tiles: bool = False,
                 progress: Progress | None = None) -> Weights:
    """Create frozen contexts holding the file's tensors (or `names`) and give them data.

    On the CPU, matmul weights of types ggml can repack go to a repacking buffer (copied and
    converted once, as llama.cpp does), Q8_0/Q5_0/Q6_K matrices to ggsight's x16 layout where
    the CPU runs its kernels (module x16); everything else is used in place from the mmap. With
    `head_copy`, a tied lm head gets its own repacked copy of the embedding table when its type
    repacks (head_copy=False: the lm head runs elsewhere). With `tiles` (a vision projector's
    weights; text models keep ggml's kernels), bf16 matrices also get a copy in the layout of the
    shim's AMX-BF16 tile kernels where the CPU has them (module tiles): their mul_mat runs there.
    repack=False: all in place, no tiles either.
    """
    dev = cpu_device() if device is None else device
    dev = dev if isinstance(dev, Device) else devices()[int(dev)]
    infos: list[TensorInfo] = gguf.tensors if names is None else [gguf.tensor(n) for n in names]
    if not infos:
        raise InvalidArgumentError(f"{gguf.path}: no tensors to load")
    repacked = None
    if repack:
        to_repack, infos, extra = _split_repackable(infos, dev)
        tied = _tied_head(gguf, infos, dev, extra) if extra >= 0 and head_copy else None
        if to_repack or tied:
            # (name in the model, file tensor): a tied lm head gets its own repacked copy of the
            # embedding table, which get_rows must still read plain - as llama.cpp duplicates it
            wanted = [(i.name, i) for i in to_repack] + ([("output.weight", tied)] if tied else [])
            rctx = Context(len(wanted) + 1, frozen=True)
            rtensors = {name: rctx.new_tensor(i.shape, i.dtype, name) for name, i in wanted}
            rbuf = Buffer.for_context_extra(rctx, dev.index, extra)
            for name, info in wanted:
                rtensors[name].write(gguf.tensor_data(info))
                if name == info.name:  # a copy in place of the file's bytes (not the tied head's second one)
                    _drop_pages(gguf, info.abs_offset, info.nbytes)
            repacked = Weights(gguf, rctx, rtensors, rbuf, mapped=False)
            if tied:
                repacked.alias_of = {"output.weight": tied.name}
    interleaved = None
    if repack and dev.type == "cpu":
        packable = {i.name for i in infos if x16.packable(i.shape, i.dtype)}
        if packable:
            interleaved = _load_interleaved(gguf, dev, [i for i in infos if i.name in packable])
            infos = [i for i in infos if i.name not in packable]
    weights = _load_plain(gguf, dev, infos, use_mmap, progress) if infos else interleaved
    if interleaved is not None and interleaved is not weights:
        weights.tensors.update(interleaved.tensors)
        weights.interleaved = interleaved
    if repacked is not None:
        weights.tensors.update(repacked.tensors)
        weights.alias_of = dict(repacked.alias_of)
        weights.repacked = repacked
    if tiles and repack and dev.type == "cpu":
        _bind_tiles(weights)
    return weights


def _bind_tiles(weights: Weights) -> None:
    """bf16 matrices used in place become TiledTensors: the same tensor, plus its tile copy."""
    repacked = weights.repacked.tensors if weights.repacked is not None else {}
    for name, t in list(weights.tensors.items()):
        if type(t) is Tensor and name not in repacked and bf16_tiles.tileable(name, t.ne, t.dtype):
            tiled = bf16_tiles.TiledTensor.of(t)
            weights.tensors[name] = tiled
            weights.tiles[name] = tiled.tiles


def _tied_head(gguf: GGUFFile, infos: list[TensorInfo], dev: Device, extra: int) -> TensorInfo | None:
    """The embedding table, when it also serves as the lm head (no output.weight) and the
    repacking buffer can multiply with it."""
    names = {i.name for i in gguf.tensors}
    table = next((i for i in infos if i.name == "token_embd.weight"), None)
    if table is None or "output.weight" in names:
        return None
    probe = Context(2, frozen=True)
    return table if extra_supports_matmul(dev.index, extra, probe.new_tensor(table.shape, table.dtype)) else None


def _load_interleaved(gguf: GGUFFile, dev: Device, infos: list[TensorInfo], chunk_bytes: int = 4 << 20) -> Weights:
    """Q8_0/Q5_0/Q6_K matrices copied into the x16 layout, a few MiB at a time; the file pages
    each slice came from are handed back, so the copy does not count twice in resident memory."""
    ctx = Context(len(infos) + 1, frozen=True)
    tensors = {i.name: x16.X16Tensor(ctx, ctx.new_tensor(i.shape, i.dtype, i.name).ptr) for i in infos}
    buffer = Buffer.for_context(ctx, dev.index)
    buffer.mark_weights()
    for info in infos:
        tensor = tensors[info.name]
        data = gguf.tensor_data(info)
        row_bytes = info.nbytes // tensor.ne[1]
        step = max(x16.ROWS, chunk_bytes // row_bytes // x16.ROWS * x16.ROWS)
        for row in range(0, tensor.ne[1], step):
            end = min(tensor.ne[1], row + step)
            tensor.write_gguf(data[row * row_bytes:end * row_bytes], row)
            _drop_pages(gguf, info.abs_offset + row * row_bytes, (end - row) * row_bytes)
        data.release()
    return Weights(gguf, ctx, tensors, buffer, mapped=False)


def _drop_pages(gguf: GGUFFile, offset: int, size: int) -> None:
    """Unmap the file pages of [offset, offset+size) from this process. The mapping is read-only
    and file-backed, so a page a neighbouring tensor still reads in place just faults back in."""
    if gguf.mmap is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    start = offset // mmap.PAGESIZE * mmap.PAGESIZE
    end = min(len(gguf.mmap), -(-(offset + size) // mmap.PAGESIZE) * mmap.PAGESIZE)
    if end > start:
        gguf.mmap.madvise(mmap.MADV_DONTNEED, start, end - start)


def _load_plain(gguf: GGUFFile, dev: Device, infos: list[TensorInfo], use_mmap: bool,
                progress: Progress | None) -> Weights:
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
