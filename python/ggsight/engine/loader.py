"""The one load sequence, for load() and estimate() alike:

  open the GGUF (Ollama's single file seen as text + mmproj) -> tokenizer -> the folder's text model
  class over its weights (repacked / x16 at load) -> the image glue over the mmproj's weights (bf16
  tiles bound at load) -> the memory plan -> placement over devices -> the KV cache.

estimate() runs the same steps with plan_only: weights used in place from the mapping (nothing is
copied or repacked, so nothing big is allocated), no scheduler, no placement moves, no cache.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..cache import KVCache
from ..errors import InvalidArgumentError
from ..ggml import Backend, Device, GGUFFile, Scheduler, cpu_device, default_threads, load_weights
from ..ggml import tiles as bf16_tiles
from ..models import image_support, model_class
from ..models.ollama_layout import is_single_file, split_single_file
from .dump import DumpScheduler, dump_target
from .host_memory import HostMeter
from .image_cache import DEFAULT_MAX_BYTES, ImageCache, default_disk_dir, file_identity
from .memory import KV_TYPES, MemoryEstimate, check_n_seq, plan
from .offload import Offload, accelerators, budgets, device_names


@dataclass(frozen=True)
class LoadOptions:
    """load()'s arguments besides the path (see ggsight.load)."""
    n_ctx: int = 4096
    n_batch: int = 512
    n_threads: int | None = None
    kv_type: str = "f16"
    use_mmap: bool = True
    repack: bool = True
    mmproj: Any = None                      # path, GGUFFile, or None
    image_options: dict = field(default_factory=dict)
    image_cache_bytes: int = DEFAULT_MAX_BYTES
    image_cache_dir: Any = None             # folder, True (the user cache), or None
    n_seq: int = 1
    rpc: Sequence[str] | str | None = None
    n_gpu_layers: Any = None                # int, {device or endpoint: layers}, or None
    dump: Callable | None = None            # (name, array) per named tensor of each computed graph

    def check(self) -> None:
        if self.kv_type not in KV_TYPES:
            raise InvalidArgumentError(f"kv_type must be one of {', '.join(KV_TYPES)}, not {self.kv_type!r}")
        if self.n_ctx < 16 or self.n_batch < 1:
            raise InvalidArgumentError("n_ctx must be at least 16 and n_batch at least 1")
        check_n_seq(self.n_seq, min(self.n_batch, self.n_ctx))


class LoadedModel:
    """What a load made. After a plan-only load, backend, sched and cache are None."""
    path: Path
    gguf: GGUFFile           # the file as opened
    text: Any                # its text model's view (the file itself, or Ollama's text part)
    mmproj_gguf: Any         # the vision projector's file or view, or None
    arch: str
    model_class: type
    tokenizer: Any
    weights: Any             # the text model's Weights
    net: Any                 # the text model
    images: Any              # its image glue, or None
    image_cache: ImageCache
    memory: MemoryEstimate
    n_ctx: int
    n_batch: int
    n_threads: int
    backend: Backend | None = None
    sched: Scheduler | None = None
    cache: KVCache | None = None


def load_model(path, opts: LoadOptions, *, plan_only: bool = False, devices=None) -> LoadedModel:
    """Run the load sequence. plan_only (estimate()): stop after the memory plan; `devices`
    (simulated budgets) then say where each layer would go. Otherwise the plan refuses what does
    not fit, or places layers on the GPU/RPC devices opts.rpc / opts.n_gpu_layers ask for."""
    opts.check()
    m = LoadedModel()
    m.path = Path(path)
    if not m.path.is_file():
        raise InvalidArgumentError(f"model file not found: {m.path}")
    with HostMeter() as meter:  # the host memory the planner cannot compute, measured (not weights)
        m.gguf = GGUFFile.open(m.path)
        m.arch = m.gguf.arch
        m.model_class = model_class(m.arch)   # an unknown architecture fails before the tokenizer is built
        m.text, m.mmproj_gguf = m.gguf, None
        if opts.mmproj is not None:
            m.mmproj_gguf = _open_mmproj(opts.mmproj)
        elif is_single_file(m.gguf):  # Ollama's layout: the tower is inside
            m.text, m.mmproj_gguf = split_single_file(m.gguf)
        m.tokenizer = _tokenizer(m.text)
    # estimate() copies nothing: every weight in place, as repack=False loads them
    repack = opts.repack and not plan_only
    m.weights = load_weights(m.text, cpu_device(), use_mmap=opts.use_mmap, repack=repack)
    m.net = m.model_class(m.text, m.weights)
    m.n_ctx, m.n_batch = opts.n_ctx, min(opts.n_batch, opts.n_ctx)
    m.n_threads = opts.n_threads or default_threads()
    m.images = _image_glue(m, opts, cpu_device(), repack) if m.mmproj_gguf is not None else None
    m.image_cache = _image_cache(m, opts)

    accel = [] if plan_only else accelerators(opts.rpc, opts.n_gpu_layers)
    if plan_only:
        where, layers = devices, opts.n_gpu_layers if devices is not None else None
    else:
        where = budgets(accel) if accel else None
        layers = device_names(opts.n_gpu_layers, accel) if accel else None
    # refuse now, naming the numbers, rather than fail (or swap) once the cache is allocated
    m.memory = plan(m.net, m.images, n_ctx=m.n_ctx, n_batch=m.n_batch, kv_type=opts.kv_type, n_seq=opts.n_seq,
                    devices=where, n_gpu_layers=layers, host_measured={"tokenizer and metadata": meter.grown},
                    tile_bytes=_planned_tile_bytes(m, opts) if plan_only else None)
    if plan_only:
        return m
    m.backend = Backend(cpu_device(), n_threads=m.n_threads)
    layer_devices = None
    if accel:  # the planner placed (or refused) the layers; move what it put elsewhere
        layer_devices = _place(m, opts, accel)
    else:
        m.memory.check(m.path.name)
        m.sched = _scheduler([m.backend], opts.dump)
    c = m.net.config
    kinds = m.net.cache_kinds()
    # an image never splits, so the batch (and a sliding-window ring) must hold one whole
    cache_batch = max(m.n_batch, m.images.largest_group if m.images else 0)
    m.cache = KVCache(kinds, c.head_dim, [c.n_head_kv] * len(kinds), m.n_ctx, cache_batch, KV_TYPES[opts.kv_type],
                      n_seq=opts.n_seq, layer_devices=layer_devices)
    return m


def _open_mmproj(mmproj):
    if not isinstance(mmproj, (str, os.PathLike)):
        return mmproj   # a GGUFFile (or view) already open
    path = Path(mmproj)
    if not path.is_file():
        raise InvalidArgumentError(f"mmproj file not found: {path}")
    return GGUFFile.open(path)


def _tokenizer(text):
    from ..text.tokenizer import Tokenizer   # tokenizers & co. load only with a model
    return Tokenizer.from_gguf(text)


def _scheduler(backends: list[Backend], dump: Callable | None) -> Scheduler:
    target = dump_target(dump)   # load(dump=...), or $GGSIGHT_DUMP
    return DumpScheduler(backends, target) if target is not None else Scheduler(backends)


def _image_glue(m: LoadedModel, opts: LoadOptions, device: Device, repack: bool):
    """The image glue over the mmproj's weights on `device`: its bf16 matrices bound to the CPU's
    tile kernels where it has them and the weights may be repacked (as x16 is for text)."""
    glue = image_support(m.arch, m.mmproj_gguf)
    if glue is None:
        raise InvalidArgumentError(f"architecture {m.arch!r} has no image support")
    weights = load_weights(m.mmproj_gguf, device, use_mmap=opts.use_mmap, repack=repack, tiles=repack)
    images = glue(m.mmproj_gguf, weights, m.tokenizer, n_embd_text=m.net.config.n_embd, **dict(opts.image_options))
    if hasattr(images, "bind_text_model"):   # glue whose embeddings include text-token rows (see protocol.py)
        images.bind_text_model(m.net)
    return images


def _image_cache(m: LoadedModel, opts: LoadOptions) -> ImageCache:
    if m.mmproj_gguf is None:
        return ImageCache(opts.image_cache_bytes)
    disk_dir = default_disk_dir() if opts.image_cache_dir is True else (opts.image_cache_dir or None)
    # on disk, embeddings are filed under the projector file they came from
    namespace = file_identity(m.mmproj_gguf.path) if disk_dir is not None else "default"
    return ImageCache(opts.image_cache_bytes, disk_dir, namespace)


def _planned_tile_bytes(m: LoadedModel, opts: LoadOptions) -> int:
    """The tile copies a full load would bind for the tower (a plan-only load binds none)."""
    return bf16_tiles.planned_bytes(m.mmproj_gguf.tensors) if m.images is not None and opts.repack else 0


def _place(m: LoadedModel, opts: LoadOptions, accel: list[Device]) -> list[int]:
    """Put the weights (and tower) where the memory plan placed them and give the model a scheduler
    over those devices; returns each layer's device index for its KV cache."""
    off = Offload(m.memory.placement, {d.name: d for d in [*accel, cpu_device()]})
    m.weights = off.text_weights(m.text, opts.use_mmap, opts.repack)
    m.net = m.model_class(m.text, m.weights)
    m.sched = _scheduler(off.backends(m.backend), opts.dump)
    if m.images is not None and off.vision_device().type != "cpu":
        m.images = _image_glue(m, opts, off.vision_device(), opts.repack)
    elif m.images is not None and hasattr(m.images, "bind_text_model"):
        m.images.bind_text_model(m.net)   # the text model was rebuilt over the placed weights
    return off.layer_devices(len(m.net.cache_kinds()))
