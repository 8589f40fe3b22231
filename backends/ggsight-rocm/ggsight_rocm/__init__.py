"""ggsight plug-in: ggml's HIP backend for AMD GPUs (ROCm).

ggsight finds this package through its ``ggsight.backends`` entry point and loads the library
in :func:`library_dir` with ggml_backend_load. The HIP runtime, hipBLAS and rocBLAS are taken
from the system's ROCm (>= 6.1; ``/opt/rocm/lib`` on the library path, e.g. through ldconfig).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["library_dir"]


def library_dir() -> str:
    """The folder holding ``libggml-hip.so`` (``ggml-hip.dll``) and ``GGML_PIN``."""
    return str(Path(__file__).resolve().parent / "lib")
