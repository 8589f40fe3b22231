"""ggsight plug-in: ggml's CUDA backend, built with the CUDA 12 toolkit.

ggsight finds this package through its ``ggsight.backends`` entry point and loads the library
in :func:`library_dir` with ggml_backend_load. The library needs the CUDA runtime and cuBLAS of
the same major version; they come from NVIDIA's wheels (nvidia-cuda-runtime-cu12,
nvidia-cublas-cu12), which live where ggsight's loader cannot know, so :func:`library_dir` loads
them first (globally, so the backend's DT_NEEDED entries bind to them). A system CUDA install
found through the usual library path works as well. The driver, ``libcuda.so.1``, is the system's.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["library_dir"]

CUDA_MAJOR = 12


def library_dir() -> str:
    """The folder holding ``libggml-cuda.so`` (``ggml-cuda.dll``) and ``GGML_PIN``."""
    # imported here: ggsight calls this while it imports itself
    from ggsight.plugin_support import preload_cuda_libraries
    preload_cuda_libraries(CUDA_MAJOR)
    return str(Path(__file__).resolve().parent / "lib")
