"""ggsight plug-in: ggml's Vulkan backend (any GPU with a Vulkan 1.2+ driver).

ggsight finds this package through its ``ggsight.backends`` entry point and loads the library
in :func:`library_dir` with ggml_backend_load. The Vulkan loader (``libvulkan.so.1``,
``vulkan-1.dll``) and the GPU driver are the system's.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["library_dir"]


def library_dir() -> str:
    """The folder holding ``libggml-vulkan.so`` (``ggml-vulkan.dll``) and ``GGML_PIN``."""
    return str(Path(__file__).resolve().parent / "lib")
