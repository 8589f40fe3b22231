"""ggsight: vision-language and text models on a bundled ggml core.

    import ggsight
    ggsight.system_info()      # ggml version, backends, devices, CPU features
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (BackendError, GgmlError, GGSightError, InvalidArgumentError,  # noqa: E402
                     NativeLibraryError, OutOfMemoryError, UnsupportedError)
from .ggml.system import system_info  # noqa: E402

__all__ = ["BackendError", "GGSightError", "GgmlError", "InvalidArgumentError", "NativeLibraryError",
           "OutOfMemoryError", "UnsupportedError", "__version__", "system_info"]
