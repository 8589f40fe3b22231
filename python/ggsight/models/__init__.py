"""One folder per architecture, found by scanning this package (no hand-kept table).

Each folder's __init__.py declares what it serves (see `ModelFolder`):

    GGUF_ARCHITECTURES = ("gemma3",)       # general.architecture values its text model loads
    HF_ARCHITECTURES = ("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")  # config.json
    MODEL = Gemma3Text                     # the text decoder (config, weights, forward)
    IMAGES = Gemma3Images                  # the image glue, or None for a text-only family
    PROJECTOR_TYPES = ("gemma3",)          # clip.projector_type values of the mmproj files IMAGES reads
    CONVERT = convert_module               # HF -> GGUF text mapping (see store/convert.py), or None
    CONVERT_MMPROJ = mmproj_module         # HF -> mmproj GGUF, or None
    OLLAMA_TENSORS = (...)                 # Ollama single-file vision names -> llama.cpp's, or ()

MODEL and IMAGES implement the protocols of models/protocol.py (TextModel, ImageGlue): what the
engine calls, method by method; tests/test_protocol.py checks every folder found against them.

Adding a model is adding a folder: nothing here or elsewhere names it.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import UnsupportedError


@dataclass(frozen=True)
class ModelFolder:
    name: str                          # the folder (python package) name
    gguf_architectures: tuple[str, ...]
    hf_architectures: tuple[str, ...]
    model: Any                         # the text model class
    images: Any                        # the image glue class or None
    convert: ModuleType | None         # HF -> GGUF mapping of the text model
    convert_mmproj: ModuleType | None  # HF -> mmproj GGUF
    ollama_tensors: tuple = ()         # (Ollama tensor name pattern, llama.cpp name template)
    projector_types: tuple = ()        # clip.projector_type values its image glue reads

    @classmethod
    def of(cls, module: ModuleType) -> "ModelFolder":
        def declared(name: str, default: Any = ...):
            if not hasattr(module, name) and default is ...:
                raise TypeError(f"{module.__name__} declares no {name} (see ggsight.models)")
            return getattr(module, name, default)
        return cls(name=module.__name__.rsplit(".", 1)[-1],
                   gguf_architectures=tuple(declared("GGUF_ARCHITECTURES")),
                   hf_architectures=tuple(declared("HF_ARCHITECTURES", ())),
                   model=declared("MODEL"), images=declared("IMAGES", None),
                   convert=declared("CONVERT", None), convert_mmproj=declared("CONVERT_MMPROJ", None),
                   ollama_tensors=tuple(declared("OLLAMA_TENSORS", ())),
                   projector_types=tuple(declared("PROJECTOR_TYPES", ())))


@functools.lru_cache(maxsize=1)
def folders() -> tuple[ModelFolder, ...]:
    """Every model folder under ggsight/models, imported once."""
    return tuple(ModelFolder.of(importlib.import_module(f"{__name__}.{info.name}"))
                 for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name) if info.ispkg)


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict, dict, dict]:
    """general.architecture -> folder, config.json architecture -> folder, clip.projector_type ->
    folder, built once; a name two folders declare is refused."""
    tables: tuple[dict, dict, dict] = ({}, {}, {})
    for folder in folders():
        declared = (folder.gguf_architectures, folder.hf_architectures, folder.projector_types)
        for table, names in zip(tables, declared):
            for name in names:
                if name in table:
                    raise TypeError(f"models/{folder.name} and models/{table[name].name} both declare {name!r}")
                table[name] = folder
    return tables


def folder_for_gguf(arch: str | None) -> ModelFolder:
    folder = _tables()[0].get(arch)
    if folder is None:
        raise UnsupportedError(f"architecture {arch!r} is not supported (supported: {', '.join(architectures())})")
    return folder


def folder_for_hf(hf_architectures: list[str]) -> ModelFolder | None:
    """The folder converting a checkpoint whose config.json lists these `architectures`."""
    by_hf = _tables()[1]
    return next((by_hf[n] for n in hf_architectures if n in by_hf and by_hf[n].convert is not None), None)


def model_class(arch: str | None):
    return folder_for_gguf(arch).model


def image_support(arch: str | None, mmproj=None):
    """The image glue class for a text architecture and (optionally) its mmproj GGUF, or None.

    The mmproj's clip.projector_type decides where a folder declares it: one text architecture
    (llama) serves several vision families (Mistral 3's Pixtral tower, ...). A projector type no
    folder declares is refused rather than handed to the text architecture's glue."""
    by_gguf, _, by_projector = _tables()
    projector = mmproj.get("clip.projector_type") if mmproj is not None else None
    if projector is not None:
        folder = by_projector.get(projector)
        if folder is None:
            raise UnsupportedError(f"{getattr(mmproj, 'path', 'mmproj')}: projector type {projector!r} is not "
                                   f"supported (supported: {', '.join(sorted(by_projector))})")
        return folder.images
    folder = by_gguf.get(arch)
    return folder.images if folder is not None else None


def architectures() -> list[str]:
    return sorted(a for folder in folders() for a in folder.gguf_architectures)


def hf_architectures() -> list[str]:
    return sorted(a for folder in folders() if folder.convert is not None for a in folder.hf_architectures)
