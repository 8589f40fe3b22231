#!/usr/bin/env python3
"""Fetch the pinned, unmodified ggml tree into vendor/ggml/.

ggml is taken from the llama.cpp tree that llama-cpp-python ships in its source
distribution (see PIN). The sdist is obtained with pip, its sha256 checked against the pin,
and only the ggml subtree (plus llama.cpp's MIT licence) is unpacked next to this script.

    python vendor/ggml/fetch.py            # fetch unless vendor/ggml holds the pinned tree
    python vendor/ggml/fetch.py --force    # replace whatever is there

An unpacked tree records what it was unpacked from in vendor/ggml/VERSION; a tree whose
VERSION does not match PIN (an older pin, an interrupted unpack) is replaced.

GGSIGHT_GGML_SDIST=/path/to/llama_cpp_python-X.tar.gz uses a local copy (still hash-checked).
Downloaded sdists are kept in ~/.cache/ggsight/sdists so a second build does not fetch again.
pip does the download, so its configuration (index, proxy, certificates) applies; where this
Python has no pip, the sdist comes straight from PyPI's JSON API instead.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEEP = {"PIN", "fetch.py"}


def read_pin() -> dict[str, str]:
    pin = {}
    for line in (HERE / "PIN").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pin[key.strip()] = value.strip()
    return pin


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ggsight" / "sdists"


def pip_download(pin: dict[str, str], dest: Path) -> Path:
    spec = f"{pin['package']}=={pin['package_version']}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", "-d", str(dest), spec]
    # Preparing the sdist's metadata needs its build backend; reusing ours (present inside
    # our own isolated build) turns a one-minute isolated-env setup into seconds.
    if importlib.util.find_spec("scikit_build_core") is not None:
        cmd.insert(4, "--no-build-isolation")
    print("fetch-ggml:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    found = sorted(dest.glob("*.tar.gz"))
    if not found:
        raise SystemExit(f"fetch-ggml: pip did not produce an sdist of {spec} in {dest}")
    return found[0]


def pypi_download(pin: dict[str, str], dest: Path) -> Path:
    """The sdist from PyPI's JSON API, for a Python without pip (the hash is checked after)."""
    api = f"https://pypi.org/pypi/{pin['package']}/{pin['package_version']}/json"
    print(f"fetch-ggml: no pip in {sys.executable}; asking {api}", flush=True)
    with urllib.request.urlopen(api, timeout=60) as response:
        release = json.load(response)
    sdists = [u for u in release.get("urls", []) if u.get("packagetype") == "sdist"]
    if not sdists:
        raise SystemExit(f"fetch-ggml: PyPI lists no sdist for {pin['package']} {pin['package_version']}")
    target = dest / sdists[0]["filename"]
    with urllib.request.urlopen(sdists[0]["url"], timeout=300) as response, target.open("wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)
    return target


def download(pin: dict[str, str], dest: Path) -> Path:
    if importlib.util.find_spec("pip") is not None:
        return pip_download(pin, dest)
    return pypi_download(pin, dest)


def obtain_sdist(pin: dict[str, str], workdir: Path) -> Path:
    want = pin["sdist_sha256"]
    local = os.environ.get("GGSIGHT_GGML_SDIST")
    name = f"{pin['package'].replace('-', '_')}-{pin['package_version']}.tar.gz"
    cached = cache_dir() / name
    candidates = [Path(local)] if local else []
    candidates.append(cached)
    for path in candidates:
        if not path.is_file():
            continue
        got = sha256_of(path)
        if got == want:
            print(f"fetch-ggml: using {path}", flush=True)
            return path
        print(f"fetch-ggml: ignoring {path}: sha256 {got}, pinned {want}", file=sys.stderr, flush=True)
    try:
        sdist = download(pin, workdir)
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"fetch-ggml: could not download {name}: {e}. Set GGSIGHT_GGML_SDIST to a "
                         f"local copy (sha256 {want}) to build offline.") from e
    got = sha256_of(sdist)
    if got != want:
        raise SystemExit(f"fetch-ggml: sha256 mismatch for {sdist.name}: got {got}, pinned {want}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sdist, cached)
    except OSError:
        pass  # a read-only home only costs a re-download next time
    return sdist


def unpack(pin: dict[str, str], sdist: Path) -> None:
    top = f"{pin['package'].replace('-', '_')}-{pin['package_version']}/"
    subtree = top + pin["subtree"].strip("/") + "/"
    licence = top + pin["license"]
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for m in tar.getmembers():
            if m.name.startswith(subtree) and (m.isfile() or m.isdir()):
                m.name = m.name[len(subtree):]
                if m.name and ".." not in Path(m.name).parts:
                    members.append(m)
            elif m.name == licence:
                m.name = "LICENSE"
                members.append(m)
        if not any(m.name == "CMakeLists.txt" for m in members):
            raise SystemExit(f"fetch-ggml: {pin['subtree']} not found in {sdist.name}")
        tar.extractall(HERE, members=members, filter="data")
    # written last: a tree without it (an interrupted unpack) counts as stale
    (HERE / "VERSION").write_text(version_line(pin) + "\n")


def version_line(pin: dict[str, str]) -> str:
    return f"{pin['ggml_version']} {pin['package']}=={pin['package_version']} sha256:{pin['sdist_sha256']}"


def unpacked_version() -> str | None:
    try:
        return (HERE / "VERSION").read_text().strip()
    except OSError:
        return None


def clear() -> None:
    for child in HERE.iterdir():
        if child.name in KEEP:
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="replace an existing tree")
    args = ap.parse_args()
    pin = read_pin()
    have = unpacked_version()
    if have == version_line(pin) and (HERE / "CMakeLists.txt").exists() and not args.force:
        print(f"fetch-ggml: vendor/ggml holds the pinned ggml {pin['ggml_version']} (--force refetches)")
        return 0
    if have is not None or (HERE / "CMakeLists.txt").exists():
        why = "--force" if args.force else f"it holds {have or 'an unfinished unpack'}, PIN says {version_line(pin)}"
        print(f"fetch-ggml: replacing vendor/ggml ({why})", flush=True)
    clear()
    with tempfile.TemporaryDirectory(prefix="ggsight-ggml-") as tmp:
        unpack(pin, obtain_sdist(pin, Path(tmp)))
    print(f"fetch-ggml: ggml {pin['ggml_version']} unpacked into {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
