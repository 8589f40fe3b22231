"""Ollama's single-file multimodal GGUF seen as llama.cpp's text GGUF + mmproj GGUF.

Ollama writes the vision tower and projector into the model file itself, with its own tensor
names (`v.patch_embedding`, `v.blk.N.layer_norm1`, `mm.mm_input_projection`, ...) and keys
(`gemma3.vision.*`). Model code only knows llama.cpp's names; this module is the one place
that translates, by renaming tensor infos over the same mmap (nothing is copied). Each model
folder declares its renames (OLLAMA_TENSORS: Ollama name pattern -> llama.cpp name template).
"""
from __future__ import annotations

import dataclasses
import re

from . import folder_for_gguf
from ..errors import UnsupportedError

# clip.vision.<key> <- <arch>.<key>
_KEYS = {"image_size": "vision.image_size", "patch_size": "vision.patch_size",
         "embedding_length": "vision.embedding_length", "feed_forward_length": "vision.feed_forward_length",
         "block_count": "vision.block_count", "attention.head_count": "vision.attention.head_count",
         "attention.layer_norm_epsilon": "vision.attention.layer_norm_epsilon",
         "projection_dim": "embedding_length", "mm_tokens_per_image": "mm.tokens_per_image"}


def is_single_file(gguf) -> bool:
    return any(t.name.startswith(("v.", "mm.")) for t in gguf.tensors)


class GGUFView:
    """A GGUFFile with some tensors left out or renamed, and other metadata: same mmap."""

    def __init__(self, base, tensors, metadata):
        self.base = base
        self.path = base.path
        self.metadata = metadata
        self.tensors = tensors
        self._by_name = {t.name: t for t in tensors}
        self.mmap = base.mmap
        self.alignment = base.alignment

    def get(self, key, default=None):
        return self.metadata.get(key, default)

    def __contains__(self, key) -> bool:
        return key in self.metadata

    @property
    def arch(self):
        return self.metadata.get("general.architecture")

    def tensor(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"tensor {name!r} not found in {self.path}") from None

    def tensor_data(self, info):
        return self.base.tensor_data(info if not isinstance(info, str) else self.tensor(info))

    def tensor_numpy(self, info):
        return self.base.tensor_numpy(info if not isinstance(info, str) else self.tensor(info))


def split_single_file(gguf) -> tuple[GGUFView, GGUFView]:
    """(text view, mmproj view) of an Ollama single-file model."""
    arch = gguf.arch
    try:
        declared = folder_for_gguf(arch).ollama_tensors
    except UnsupportedError:
        declared = ()
    rules = [(re.compile(p + "$"), r) for p, r in declared]
    if not rules:
        raise ValueError(f"{gguf.path}: no single-file vision layout known for architecture {arch!r}")
    text, vision = [], []
    for info in gguf.tensors:
        if not info.name.startswith(("v.", "mm.")):
            text.append(info)
            continue
        for pattern, repl in rules:
            if pattern.match(info.name):
                vision.append(dataclasses.replace(info, name=pattern.sub(repl, info.name)))
                break
    meta = {f"clip.vision.{k}": gguf.get(f"{arch}.{v}") for k, v in _KEYS.items() if gguf.get(f"{arch}.{v}") is not None}
    meta.update({"general.architecture": "clip", "clip.projector_type": arch, "clip.has_vision_encoder": True})
    return GGUFView(gguf, text, dict(gguf.metadata)), GGUFView(gguf, vision, meta)
