"""What this build of ggsight can run on: ggml version, backends, devices, CPU features."""
from __future__ import annotations

from .._native import cstr, ffi, lib
from .backend import devices
from .plugins import load_backends


def ggml_version() -> str:
    return cstr(lib.gs_ggml_version())


def backend_names() -> list[str]:
    return [cstr(lib.gs_backend_reg_name(i)) for i in range(lib.gs_backend_reg_count())]


def cpu_features() -> dict[str, str]:
    out = ffi.new("gs_feature **")
    n = lib.gs_cpu_features(out)
    return {cstr(out[0][i].name): cstr(out[0][i].value) for i in range(max(n, 0))}


def system_info() -> dict:
    """A plain dict, suitable for printing or JSON."""
    return {
        "ggml_version": ggml_version(),
        "ggml_source": cstr(lib.gs_ggml_commit()),
        "abi_version": lib.gs_abi_version(),
        "backends": backend_names(),
        "devices": [d.__dict__.copy() for d in devices()],
        "cpu_features": cpu_features(),
        # every backend library found, whether it was loaded, and why not
        "backend_libraries": [vars(b).copy() for b in load_backends().libraries],
        "backend_folders": [{"path": f, "source": s, "problem": p} for f, s, p in load_backends().folders],
        # ggsight's own CPU kernels (csrc/amx_kernels.cpp, csrc/x16_kernels.cpp), chosen at run time
        "ggsight_kernels": {"amx_bf16": bool(lib.gs_amx_bf16_usable()), "x16_vnni": bool(lib.gs_x16_usable())},
    }
