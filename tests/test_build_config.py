"""The source build's CPU backend (cmake/ggsight_cpu.cmake): the instruction sets llama.cpp's native
build compiles with, re-read on every configure, user overrides kept. Runs CMake's configure step
only, on a probe project that includes the module (no compiling of ggml)."""
from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parent.parent / "cmake" / "ggsight_cpu.cmake"
CMAKE = shutil.which("cmake")
pytestmark = [
    pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the module reads x86 instruction sets"),
    pytest.mark.skipif(CMAKE is None, reason="no cmake on PATH (the build itself brings its own)"),
]
OPTIONS = ["GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI"]


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(probe C)\n"
        f'include("{MODULE.as_posix()}")\nggsight_cpu_from_host()\n'
        + "".join(f'message(STATUS "RESULT {o}=${{{o}}}")\n' for o in OPTIONS)
        + 'message(STATUS "RESULT FLAGS=${GGSIGHT_CPU_NATIVE_FLAGS}")\n')
    return tmp_path


def configure(src: Path, *args: str) -> dict[str, str]:
    run = subprocess.run([CMAKE, "-S", str(src), "-B", str(src / "build"), *args],
                         capture_output=True, text=True, check=True)
    return dict(re.findall(r"RESULT (\w+)=(.*)", run.stdout))


def native_macros() -> set[str]:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    out = subprocess.run([cc, "-march=native", "-dM", "-E", "-x", "c", "/dev/null"],
                         capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"#define (__\w+__) 1", out))


def test_options_are_what_march_native_enables(probe):
    got = configure(probe)
    macros = native_macros()
    assert got["GGML_AVX2"] == ("ON" if "__AVX2__" in macros else "OFF")
    assert got["GGML_AVX512_VNNI"] == ("ON" if "__AVX512VNNI__" in macros else "OFF")
    assert got["GGML_AVX_VNNI"] == ("ON" if "__AVXVNNI__" in macros else "OFF")
    assert "-march=native" in got["FLAGS"] and "GGSIGHT_HOST_ISA=" in got["FLAGS"]


def test_a_tree_configured_on_another_cpu_gets_this_cpus_options(probe):
    here = configure(probe)
    cache = probe / "build" / "CMakeCache.txt"
    text = cache.read_text()
    # pretend the tree was configured on a CPU that had the opposite of every option here
    for option in OPTIONS:
        other = "OFF" if here[option] == "ON" else "ON"
        text = re.sub(rf"^{option}:BOOL=\w+$", f"{option}:BOOL={other}", text, flags=re.M)
        text = re.sub(rf"^GGSIGHT_HOST_{option}:INTERNAL=\w+$", f"GGSIGHT_HOST_{option}:INTERNAL={other}", text, flags=re.M)
    text = re.sub(r"^GGSIGHT_CPU_NATIVE_FLAGS:INTERNAL=.*$", "GGSIGHT_CPU_NATIVE_FLAGS:INTERNAL=-march=native;-DGGSIGHT_HOST_ISA=0", text, flags=re.M)
    cache.write_text(text)
    again = configure(probe)
    assert again == here  # the fingerprint in FLAGS is this CPU's again, so the objects recompile


def test_an_option_given_by_the_user_is_kept_and_drops_march_native(probe):
    configure(probe)
    got = configure(probe, "-DGGML_AVX2=OFF")
    assert got["GGML_AVX2"] == "OFF"
    assert got["FLAGS"] == ""  # -march=native would turn AVX2 back on
    assert configure(probe)["GGML_AVX2"] == "OFF"  # and it stays the user's on the next configure
