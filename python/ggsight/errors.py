"""Exceptions raised by ggsight. Every layer raises these, so they sit below all layers."""
from __future__ import annotations


class GGSightError(RuntimeError):
    """Base class of ggsight's errors; `status` is the shim's status code when one exists."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class InvalidArgumentError(GGSightError, ValueError):
    """A bad shape, index, handle or value was passed down to ggml."""


class GgmlError(GGSightError, ValueError):
    """ggml refused to build an op (its assertion message is the text)."""


class BackendError(GGSightError):
    """A backend failed to initialise, allocate or compute."""


class OutOfMemoryError(GGSightError, MemoryError):
    """An allocation on a device failed."""


class UnsupportedError(GGSightError):
    """No backend or type supports the request."""


class NativeLibraryError(GGSightError, ImportError):
    """The compiled shim could not be found or does not match this Python package."""
