"""For GPU plug-in packages (ggsight-cuda12, ggsight-cuda13): load the CUDA runtime and cuBLAS
from NVIDIA's PyPI wheels before ggml opens the backend library.

Those wheels put their libraries under the `nvidia` namespace package, where the dynamic loader
does not look; loaded first and globally, they satisfy the backend's DT_NEEDED entries. A system
CUDA install on the usual library path works without this. Nothing here touches ggml.
"""
from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

_preloaded: dict[int, list[str]] = {}


def _wanted(m: int) -> list[str]:
    if sys.platform == "win32":
        return [f"cudart64_{m}.dll", f"cublasLt64_{m}.dll", f"cublas64_{m}.dll"]
    return [f"libcudart.so.{m}", f"libcublasLt.so.{m}", f"libcublas.so.{m}"]


def _nvidia_dirs() -> list[Path]:
    try:
        import nvidia  # namespace package of the nvidia-* wheels
    except Exception:
        return []
    return [Path(p) for p in getattr(nvidia, "__path__", [])]


def preload_cuda_libraries(major: int) -> list[str]:
    """Load the CUDA runtime and cuBLAS from the nvidia-* wheels, if installed.

    Best effort: never raises; returns the paths loaded (empty when the wheels are absent and
    the system's libraries are to be used). Done once per process.
    """
    if major in _preloaded:
        return _preloaded[major]
    loaded: list[str] = []
    try:
        roots = _nvidia_dirs()
        mode = getattr(os, "RTLD_GLOBAL", 0) | getattr(os, "RTLD_NOW", 0)
        for name in _wanted(major):
            for root in roots:
                try:
                    hits = sorted(root.rglob(name))
                except OSError:
                    continue
                if not hits:
                    continue
                path = hits[0]
                try:
                    if sys.platform == "win32" and hasattr(os, "add_dll_directory"):
                        os.add_dll_directory(str(path.parent))
                    ctypes.CDLL(str(path), mode=mode)
                    loaded.append(str(path))
                except OSError:
                    pass
                break
    except Exception:
        pass
    _preloaded[major] = loaded
    return loaded


