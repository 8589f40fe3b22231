"""ggsight plug-in: ggml's BLAS backend (OpenBLAS) for matrix products on the CPU.

ggsight finds this package through its ``ggsight.backends`` entry point and loads the library
in :func:`library_dir` with ggml_backend_load.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["library_dir"]


def library_dir() -> str:
    """The folder holding ``libggml-blas.so`` (``ggml-blas.dll``) and ``GGML_PIN``."""
    return str(Path(__file__).resolve().parent / "lib")
