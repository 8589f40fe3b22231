"""vendor/ggml/fetch.py on a small sdist of the same layout (no download): a tree is unpacked with
a VERSION naming the pin, left alone while VERSION matches PIN, replaced when it does not (an older
pin, an interrupted unpack), and a sdist whose sha256 is not the pinned one is refused."""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

FETCH = Path(__file__).resolve().parent.parent / "vendor" / "ggml" / "fetch.py"


def make_sdist(path: Path, version: str, marker: str) -> str:
    top = f"llama_cpp_python-{version}/"
    files = {top + "vendor/llama.cpp/ggml/CMakeLists.txt": f"# ggml {marker}\n",
             top + "vendor/llama.cpp/ggml/src/ggml.c": "int x;\n",
             top + "vendor/llama.cpp/LICENSE": "MIT\n",
             top + "vendor/llama.cpp/src/llama.cpp": "not ggml\n"}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_pin(where: Path, version: str, sha: str) -> None:
    where.joinpath("PIN").write_text(
        f"ggml_version = 9.9.{version[-1]}\npackage = llama-cpp-python\npackage_version = {version}\n"
        f"sdist_sha256 = {sha}\nsubtree = vendor/llama.cpp/ggml\nlicense = vendor/llama.cpp/LICENSE\n")


def run_fetch(vendor: Path, sdist: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "GGSIGHT_GGML_SDIST": str(sdist)}
    return subprocess.run([sys.executable, str(vendor / "fetch.py"), *args], capture_output=True, text=True, env=env)


@pytest.fixture
def vendor(tmp_path):
    where = tmp_path / "vendor" / "ggml"
    where.mkdir(parents=True)
    shutil.copy(FETCH, where / "fetch.py")
    return where


def test_unpacks_then_keeps_then_replaces_a_stale_tree(vendor, tmp_path):
    old = tmp_path / "llama_cpp_python-0.0.1.tar.gz"
    write_pin(vendor, "0.0.1", make_sdist(old, "0.0.1", "old"))
    first = run_fetch(vendor, old, tmp_path)
    assert first.returncode == 0, first.stderr
    assert (vendor / "CMakeLists.txt").read_text() == "# ggml old\n"
    assert (vendor / "LICENSE").read_text() == "MIT\n" and not (vendor / "llama.cpp").exists()
    assert "9.9.1 llama-cpp-python==0.0.1" in (vendor / "VERSION").read_text()

    again = run_fetch(vendor, old, tmp_path)
    assert again.returncode == 0 and "holds the pinned ggml" in again.stdout

    new = tmp_path / "llama_cpp_python-0.0.2.tar.gz"
    write_pin(vendor, "0.0.2", make_sdist(new, "0.0.2", "new"))
    bumped = run_fetch(vendor, new, tmp_path)
    assert bumped.returncode == 0, bumped.stderr
    assert "replacing vendor/ggml" in bumped.stdout
    assert (vendor / "CMakeLists.txt").read_text() == "# ggml new\n"
    assert "0.0.2" in (vendor / "VERSION").read_text()
    assert (vendor / "PIN").exists() and (vendor / "fetch.py").exists()


def test_an_unfinished_unpack_is_replaced(vendor, tmp_path):
    sdist = tmp_path / "llama_cpp_python-0.0.1.tar.gz"
    write_pin(vendor, "0.0.1", make_sdist(sdist, "0.0.1", "good"))
    (vendor / "CMakeLists.txt").write_text("# half a tree, no VERSION\n")
    run = run_fetch(vendor, sdist, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "an unfinished unpack" in run.stdout
    assert (vendor / "CMakeLists.txt").read_text() == "# ggml good\n"


def test_a_sdist_with_another_hash_is_refused(vendor, tmp_path):
    sdist = tmp_path / "llama_cpp_python-0.0.1.tar.gz"
    make_sdist(sdist, "0.0.1", "tampered")
    write_pin(vendor, "0.0.1", "0" * 64)
    # the local copy does not match, so fetch.py tries pip, which cannot find this made-up
    # release offline either: either way nothing is unpacked and the message says why
    env_home = tmp_path / "home"
    env_home.mkdir()
    run = subprocess.run([sys.executable, str(vendor / "fetch.py")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(env_home), "GGSIGHT_GGML_SDIST": str(sdist),
                              "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1",
                              "PIP_FIND_LINKS": str(tmp_path / "nowhere"), "PIP_RETRIES": "0"})
    assert run.returncode != 0
    assert f"ignoring {sdist}: sha256 " in run.stderr and "pinned " + "0" * 64 in run.stderr
    assert "could not download" in run.stderr
    assert not (vendor / "CMakeLists.txt").exists() and not (vendor / "VERSION").exists()
