"""ggsight: vision-language and text models on a bundled ggml core.

    import ggsight
    ggsight.system_info()      # ggml version, backends, devices, CPU features
    model = ggsight.load()     # the embedded default model, or a GGUF path
    model.generate("The capital of France is", max_tokens=16).text
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (BackendError, GgmlError, GGSightError, InvalidArgumentError,  # noqa: E402
                     NativeLibraryError, OutOfMemoryError, UnsupportedError)
from .ggml.system import system_info  # noqa: E402



def __getattr__(name):  # load()/Model pull in tokenizers & co. only when used
    if name in ("load", "Model", "IMAGE"):
        from . import model
        return getattr(model, name)
    if name in ("estimate", "MemoryEstimate"):
        from .engine import memory
        return getattr(memory, name)
    raise AttributeError(f"module 'ggsight' has no attribute {name!r}")


__all__ = ["IMAGE", "MemoryEstimate", "Model", "estimate", "load", "BackendError", "GGSightError", "GgmlError",
           "InvalidArgumentError", "NativeLibraryError", "OutOfMemoryError", "UnsupportedError", "__version__",
           "system_info"]
