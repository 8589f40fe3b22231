"""Image embeddings by content: the vision tower runs once per image (and preprocessing),
whatever the KV cache holds. In memory: least recently used first out, bounded in bytes,
never dropping an embedding the prompt being built still needs. Optionally on disk, under
the user cache directory: survives restarts, every entry checksummed and re-verified on read.
Plain numpy and files: no backend."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_MAGIC = b"GGSEMB1\0"
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


def default_disk_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ggsight" / "image-embeddings"


def file_identity(path: str | os.PathLike) -> str:
    """A short content identity of a model file (size + its first MiB: header, metadata and the
    tensor table), so cached embeddings of one mmproj are never served for another."""
    h = hashlib.sha256()
    p = Path(path)
    h.update(str(p.stat().st_size).encode())
    with open(p, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:32]


class ImageCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, disk_dir: str | os.PathLike | None = None,
                 namespace: str = "default"):
        if max_bytes < 0:
            raise ValueError(f"image cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.disk_dir = Path(disk_dir) / namespace if disk_dir is not None else None
        self._mem: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pins: dict[str, int] = {}
        self.nbytes = 0
        self.hits = self.disk_hits = self.misses = self.evictions = self.corrupt = 0

    def __contains__(self, key: str) -> bool:
        return key in self._mem

    def __len__(self) -> int:
        return len(self._mem)

    def get(self, key: str) -> np.ndarray | None:
        """The embedding (now most recently used), from memory or disk; None when unknown."""
        emb = self._mem.get(key)
        if emb is not None:
            self._mem.move_to_end(key)
            self.hits += 1
            return emb
        emb = self._read_disk(key)
        if emb is None:
            self.misses += 1
            return None
        self.disk_hits += 1
        self._insert(key, emb)
        return emb

    def put(self, key: str, emb: np.ndarray) -> None:
        emb = np.ascontiguousarray(emb)
        self._insert(key, emb)
        self._write_disk(key, emb)

    @contextmanager
    def in_use(self, keys):
        """Keep these entries from being evicted while a prompt that needs them is built."""
        keys = list(keys)
        for k in keys:
            self._pins[k] = self._pins.get(k, 0) + 1
        try:
            yield
        finally:
            for k in keys:
                self._pins[k] -= 1
                if not self._pins[k]:
                    del self._pins[k]
            self._evict()

    # ---- memory ------------------------------------------------------------------------
    def _insert(self, key: str, emb: np.ndarray) -> None:
        old = self._mem.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._mem[key] = emb
        self.nbytes += emb.nbytes
        self._evict()

    def _evict(self) -> None:
        # oldest first; pinned entries stay even when that leaves the cache over its budget
        for key in list(self._mem):
            if self.nbytes <= self.max_bytes:
                break
            if key in self._pins:
                continue
            self.nbytes -= self._mem.pop(key).nbytes
            self.evictions += 1

    # ---- disk --------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.disk_dir / key[:2] / f"{key}.emb"

    def _write_disk(self, key: str, emb: np.ndarray) -> None:
        if self.disk_dir is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = json.dumps({"dtype": emb.dtype.str, "shape": list(emb.shape)}).encode()
        payload = emb.tobytes()
        digest = hashlib.sha256(head + payload).digest()
        # write then rename: a reader never sees half a file, two writers never mix theirs
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + digest + len(head).to_bytes(4, "little") + head + payload)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)   # a full or read-only disk costs the cache, nothing else

    def _read_disk(self, key: str) -> np.ndarray | None:
        if self.disk_dir is None:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            if data[:8] != _MAGIC:
                raise ValueError("bad magic")
            digest, n_head = data[8:40], int.from_bytes(data[40:44], "little")
            head, payload = data[44:44 + n_head], data[44 + n_head:]
            if hashlib.sha256(head + payload).digest() != digest:
                raise ValueError("checksum mismatch")
            meta = json.loads(head)
            emb = np.frombuffer(payload, dtype=np.dtype(meta["dtype"])).reshape(meta["shape"]).copy()
        except (ValueError, KeyError, TypeError):
            # a damaged entry is dropped and recomputed, never served
            self.corrupt += 1
            path.unlink(missing_ok=True)
            return None
        return emb
