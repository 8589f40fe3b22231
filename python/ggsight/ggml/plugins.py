"""ggml backend libraries: the ones beside libggsight and those of plug-in packages, probed and
registered once, before any device is listed.

A build with dynamic backends (GGML_BACKEND_DL) carries one library per backend, and the portable
wheel one CPU library per instruction-set generation (libggml-cpu-haswell, -skylakex, ...). ggml's
own loader picks a variant silently; here each library is probed first (ggml's score of this
machine for it), so `ggsight info` can say what was chosen and why each other one was not.

Plug-in packages (ggsight-cuda12, ggsight-rocm, ...) declare an entry point in the group
"ggsight.backends": a callable returning the folder that holds their libraries and a GGML_PIN
file, a copy of the pin of the ggml they were built from; a plug-in built from another ggml is
refused (its backend interface could differ). $GGSIGHT_BACKEND_PATH adds folders (os.pathsep).
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .._native import cstr, ffi, lib, library_dir
from .backend import devices

ENTRY_POINT_GROUP = "ggsight.backends"
PATH_ENV = "GGSIGHT_BACKEND_PATH"
_SUFFIX = {"win32": ".dll", "darwin": ".so"}.get(sys.platform, ".so")
_NAME = re.compile(r"^(?:lib)?ggml-([a-z0-9]+)(?:-([A-Za-z0-9_.]+))?" + re.escape(_SUFFIX) + "$")
# families registered before the rest, so device 0 stays the CPU and RPC servers come after it
_FIRST = ("cpu", "rpc")


@dataclass
class BackendLibrary:
    path: str
    family: str            # cpu, cuda, rpc, ...
    variant: str           # haswell, skylakex, ... ("" for a single-library backend)
    source: str            # "ggsight" or the plug-in's distribution name / folder
    score: int = -1        # ggml's score of this machine for a CPU variant; -1: none reported
    status: str = ""       # "loaded", or why not
    loaded: bool = False


@dataclass
class Report:
    libraries: list = field(default_factory=list)   # [BackendLibrary]
    folders: list = field(default_factory=list)     # [(folder, source, problem or "")]

    def chosen(self, family: str) -> BackendLibrary | None:
        return next((b for b in self.libraries if b.family == family and b.loaded), None)


def _pin_key(text: str) -> str:
    """The sdist hash line of a GGML_PIN file: what identifies the ggml a library was built from."""
    m = re.search(r"^sdist_sha256\s*=\s*(\S+)", text, re.MULTILINE)
    return m.group(1) if m else text.strip()


def _own_pin() -> str | None:
    f = library_dir / "GGML_PIN"
    return _pin_key(f.read_text(encoding="utf-8")) if f.is_file() else None


def _plugin_folders() -> list[tuple[Path, str]]:
    out = []
    for entry in os.environ.get(PATH_ENV, "").split(os.pathsep):
        if entry.strip():
            out.append((Path(entry.strip()), f"{PATH_ENV}"))
    try:
        from importlib.metadata import entry_points
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken environment must not stop ggsight from running on the CPU
        eps = []
    for ep in eps:
        name = getattr(getattr(ep, "dist", None), "name", None) or ep.name
        try:
            out.append((Path(ep.load()()), name))
        except Exception as e:  # noqa: BLE001 - a plug-in's own failure is reported, not raised
            out.append((None, f"{name}: its entry point failed ({type(e).__name__}: {e})"))
    return out


def _why_not_loadable(error: str) -> str:
    missing = re.search(r"([\w.+-]+\.(?:so|dylib|dll)[\w.]*): cannot open shared object file", error)
    if missing:
        lib_name = missing.group(1)
        hint = {"libcuda.so": "the NVIDIA driver is not installed",
                "libamdhip64": "ROCm's HIP runtime is not installed",
                "libvulkan": "no Vulkan loader (install the GPU driver / libvulkan1)",
                "libcudart": "the CUDA runtime is missing (pip install the plug-in's nvidia-* dependencies)",
                "libcublas": "cuBLAS is missing (pip install the plug-in's nvidia-* dependencies)"}
        why = next((h for k, h in hint.items() if lib_name.startswith(k)), "a library it needs is missing")
        return f"{why}: {lib_name} not found"
    if "version" in error.lower() and ("GLIBC" in error or "CXXABI" in error or "GLIBCXX" in error):
        return f"built against a newer system library: {error}"
    return error


def _probe(libs: list[BackendLibrary]) -> None:
    err = ffi.new("char[]", 512)
    score = ffi.new("int *")
    for b in libs:
        if b.status:
            continue
        if lib.gs_backend_probe(b.path.encode(), score, err, len(err)) < 0:
            b.status = "cannot load: " + _why_not_loadable(cstr(err) or "unknown reason")
        else:
            b.score = int(score[0])
            if b.score == 0:
                b.status = "this CPU lacks an instruction set it uses"


def _choose(libs: list[BackendLibrary]) -> None:
    """Per family, the highest-scoring usable library (ggsight's own before a plug-in's on ties)."""
    for family in dict.fromkeys(b.family for b in libs):
        usable = [b for b in libs if b.family == family and not b.status]
        if not usable:
            continue
        best = max(usable, key=lambda b: (b.score, b.source == "ggsight"))
        for b in usable:
            if b is not best:
                b.status = (f"not chosen: {best.variant or best.family} scores higher ({best.score} > {b.score})"
                            if b.score < best.score else f"not chosen: {family} comes from {best.source}")
        best.status = "chosen"


def _register(libs: list[BackendLibrary]) -> None:
    order = sorted((b for b in libs if b.status == "chosen"),
                   key=lambda b: _FIRST.index(b.family) if b.family in _FIRST else len(_FIRST))
    for b in order:
        index = lib.gs_backend_load_file(b.path.encode())
        if index < 0:
            from .._native import last_error
            b.status = f"ggml refused it: {last_error()}"
            continue
        b.status, b.loaded = "loaded", True
        registry = cstr(lib.gs_backend_reg_name(index))
        if b.family != "rpc" and not any(d.backend == registry for d in devices()):
            # e.g. CUDA without a driver: ggml printed why ("CUDA driver version is insufficient ...")
            b.status = "loaded, but it found no devices (no driver or no GPU; ggml's message above says which)"


def scan(folder: Path, source: str) -> list[BackendLibrary]:
    out = []
    for f in sorted(folder.iterdir()) if folder.is_dir() else ():
        m = _NAME.match(f.name)
        if m:
            out.append(BackendLibrary(str(f), m.group(1), m.group(2) or "", source))
    return out


_report: Report | None = None


def load_backends() -> Report:
    """Find, probe and register the backend libraries (once per process)."""
    global _report
    if _report is not None:
        return _report
    report = Report()
    own = _own_pin()
    libs = scan(library_dir, "ggsight")
    report.folders.append((str(library_dir), "ggsight", ""))
    for folder, source in _plugin_folders():
        if folder is None:
            report.folders.append(("", source, "entry point failed"))
            continue
        found = scan(folder, source)
        pin_file = folder / "GGML_PIN"
        theirs = _pin_key(pin_file.read_text(encoding="utf-8")) if pin_file.is_file() else None
        problem = ""
        if not found:
            problem = "no ggml backend libraries in it"
        elif theirs is None:
            problem = "no GGML_PIN file: cannot tell which ggml it was built from"
        elif own is not None and theirs != own:
            problem = (f"built from ggml {theirs[:12]}, this ggsight uses {own[:12]}: install the plug-in "
                       f"release made for this ggsight version")
        for b in found:
            b.status = f"refused: {problem}" if problem else ""
        report.folders.append((str(folder), source, problem))
        libs += found
    _probe(libs)
    _choose(libs)
    _register(libs)
    report.libraries = libs
    _report = report
    if not any(b.family == "cpu" and b.loaded for b in libs):
        from ..errors import NativeLibraryError
        why = "; ".join(f"{Path(b.path).name}: {b.status}" for b in libs if b.family == "cpu") or "none found"
        raise NativeLibraryError(
            f"no usable CPU backend library (libggml-cpu*) beside {library_dir} ({why}). "
            "Reinstall ggsight (`pip install .`), or point GGSIGHT_LIBRARY at a build's native/ folder")
    return report
