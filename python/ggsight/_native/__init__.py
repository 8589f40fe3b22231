"""The only module that talks to cffi: loads the shim, checks its ABI, maps errors.

ABI mode (ffi.dlopen + ffi.cdef of csrc/ggsight.h) is used on purpose; csrc/CFFI.md says why.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from cffi import FFI

from ..errors import (BackendError, GgmlError, GGSightError, InvalidArgumentError,
                      NativeLibraryError, OutOfMemoryError, UnsupportedError)

_HERE = Path(__file__).resolve().parent
_LIB_NAMES = {"linux": "libggsight.so", "darwin": "libggsight.dylib", "win32": "ggsight.dll"}


def _find(env: str, name: str) -> Path:
    override = os.environ.get(env)
    path = Path(override) if override else _HERE / name
    if not path.is_file():
        raise NativeLibraryError(
            f"ggsight's native part is missing: {path} not found. Install the package with "
            f"`pip install .` (a plain source checkout has no compiled library) or set {env}.")
    return path


def _load():
    header = _find("GGSIGHT_HEADER", "ggsight.h")
    libfile = _find("GGSIGHT_LIBRARY", _LIB_NAMES.get(sys.platform, "libggsight.so"))
    ffi = FFI()
    ffi.cdef(header.read_text(encoding="utf-8"))
    try:
        lib = ffi.dlopen(str(libfile))
    except OSError as e:
        raise NativeLibraryError(f"could not load {libfile}: {e}") from e
    if lib.gs_abi_version() != lib.GS_ABI_VERSION:
        raise NativeLibraryError(
            f"{libfile} has ABI {lib.gs_abi_version()} but {header} declares {lib.GS_ABI_VERSION}: "
            "reinstall ggsight so the library and the Python code match")
    for struct in ("gs_type_info", "gs_device_info", "gs_tensor_desc", "gs_feature"):
        if lib.gs_struct_size(struct.encode()) != ffi.sizeof(struct):
            raise NativeLibraryError(f"{struct} layout differs between {libfile} and {header}")
    return ffi, lib, libfile


ffi, lib, library_path = _load()
# ggml's backend libraries (and GGML_PIN) lie beside libggsight, installed or in a build tree
library_dir = library_path.parent
NULL = ffi.NULL

_BY_STATUS = {
    lib.GS_ERR_INVALID: InvalidArgumentError,
    lib.GS_ERR_OOM: OutOfMemoryError,
    lib.GS_ERR_BACKEND: BackendError,
    lib.GS_ERR_GGML: GgmlError,
    lib.GS_ERR_UNSUPPORTED: UnsupportedError,
}


def last_error() -> str:
    return ffi.string(lib.gs_last_error()).decode("utf-8", "replace")


def error(status: int, context: str = "") -> GGSightError:
    message = last_error() or f"ggsight shim returned status {status}"
    if context:
        message = f"{context}: {message}"
    return _BY_STATUS.get(status, GGSightError)(message, status)


def check(status: int, context: str = "") -> int:
    """Raise the exception matching a negative status; pass other values through."""
    if status < 0:
        raise error(status, context)
    return status


def check_ptr(ptr, context: str = ""):
    """Raise when a shim call returned NULL; the shim has set the reason."""
    if ptr == NULL:
        status = lib.gs_last_status()
        raise error(status if status < 0 else lib.GS_ERR_INVALID, context)
    return ptr


def cstr(value) -> str:
    return ffi.string(value).decode("utf-8", "replace") if value != NULL else ""


def owned(ptr, destructor, *keep_alive):
    """Tie a handle's lifetime to Python: `destructor` runs when the cdata is collected.

    `keep_alive` objects (backends of a scheduler, the mmap under a host buffer) stay alive
    until then, whatever order the garbage collector picks.
    """
    if keep_alive:
        return ffi.gc(ptr, lambda p, _keep=keep_alive: destructor(p))
    return ffi.gc(ptr, destructor)
