"""One folder per architecture; the registry maps `general.architecture` to its model."""
from __future__ import annotations

import importlib

from ..errors import UnsupportedError

# architecture name in GGUF -> module implementing it (imported on first use)
_MODULES = {
    "gemma3": "ggsight.models.gemma3",
    "qwen2vl": "ggsight.models.qwen25vl",
    "llama4": "ggsight.models.llama4",
}


def model_class(arch: str | None):
    module = _MODULES.get(arch or "")
    if module is None:
        raise UnsupportedError(
            f"architecture {arch!r} is not supported (supported: {', '.join(sorted(_MODULES))})")
    return importlib.import_module(module).MODEL


def image_support(arch: str | None):
    """The architecture's image glue class, or None when it has no vision."""
    return getattr(importlib.import_module(_MODULES[arch or ""]), "IMAGES", None) if arch in _MODULES else None


def architectures() -> list[str]:
    return sorted(_MODULES)
