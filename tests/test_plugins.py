"""Backend libraries found at run time: ggsight's own, and plug-in folders (GGSIGHT_BACKEND_PATH)
that are refused with the reason when built from another ggml or not loadable here."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ggsight
from ggsight._native import library_dir
from ggsight.ggml import plugins


def info(env_extra: dict) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-m", "ggsight", "info", "--json"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_this_process_loaded_a_cpu_backend_and_says_which():
    report = plugins.load_backends()
    cpu = report.chosen("cpu")
    assert cpu is not None and cpu.source == "ggsight" and cpu.status == "loaded"
    assert any(d.type == "cpu" for d in ggsight.ggml.devices())
    variants = [b for b in report.libraries if b.family == "cpu"]
    # a portable build carries several variants: exactly one is chosen, each other one says why not
    assert sum(b.loaded for b in variants) == 1
    for b in variants:
        assert b.loaded or b.status.startswith(("not chosen", "this CPU lacks")), b


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses Linux library names")
def test_library_names_are_read_as_family_and_variant(tmp_path):
    for name in ("libggml-cpu-haswell.so", "libggml-cuda.so", "libggsight-ggml-base.so", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = {(b.family, b.variant) for b in plugins.scan(tmp_path, "test")}
    assert found == {("cpu", "haswell"), ("cuda", "")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses Linux library names")
def test_plugin_folders_are_refused_with_the_reason(tmp_path):
    foreign = tmp_path / "foreign"      # a real backend library, but from another ggml pin
    foreign.mkdir()
    shutil.copy(next(library_dir.glob("libggml-rpc*")), foreign / "libggml-rpc.so")
    (foreign / "GGML_PIN").write_text("sdist_sha256 = 0123456789abcdef\n")
    broken = tmp_path / "broken"        # the right pin, but not a loadable library
    broken.mkdir()
    (broken / "libggml-cuda.so").write_bytes(b"not an ELF file")
    shutil.copy(library_dir / "GGML_PIN", broken / "GGML_PIN")
    unpinned = tmp_path / "unpinned"
    unpinned.mkdir()
    shutil.copy(next(library_dir.glob("libggml-rpc*")), unpinned / "libggml-rpc.so")
    got = info({plugins.PATH_ENV: os.pathsep.join(map(str, (foreign, broken, unpinned)))})
    by_path = {Path(b["path"]).parent.name: b for b in got["backend_libraries"] if b["source"] == plugins.PATH_ENV}
    assert by_path["foreign"]["status"].startswith("refused: built from ggml 0123456789ab")
    assert by_path["broken"]["status"].startswith("cannot load:") and not by_path["broken"]["loaded"]
    assert "no GGML_PIN" in by_path["unpinned"]["status"]
    assert not any(b["loaded"] for b in by_path.values())
    assert "CPU" in got["backends"]     # the base install keeps working


def test_info_prints_the_backend_libraries():
    out = subprocess.run([sys.executable, "-m", "ggsight", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "backend libraries:" in out.stdout and "* cpu" in out.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses Linux library names")
def test_a_build_without_a_cpu_backend_says_so(tmp_path):
    native = tmp_path / "pkg" / "_native"     # the same depth as ggsight/_native in a wheel
    native.mkdir(parents=True)
    for f in library_dir.glob("libggsight*.so"):
        shutil.copy(f, native / f.name)
    bundled = library_dir.parent.parent / "ggsight.libs"   # auditwheel's copies (libgomp), if any
    if bundled.is_dir():
        shutil.copytree(bundled, tmp_path / "ggsight.libs")
    env = {**os.environ, "GGSIGHT_LIBRARY": str(native / "libggsight.so")}
    out = subprocess.run([sys.executable, "-c", "import ggsight"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0 and "no usable CPU backend library" in out.stderr
