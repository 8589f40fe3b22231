"""Image-embedding cache bookkeeping (no backend) and, on a tiny model, that turns reuse it."""
from pathlib import Path

import numpy as np
import pytest

from ggsight.engine.image_cache import ImageCache, file_identity


def emb(n, value=1.0):
    return np.full((n, 4), value, np.float32)        # n * 16 bytes


def test_least_recently_used_goes_first_within_the_byte_budget():
    c = ImageCache(max_bytes=3 * 160)
    for k in "abc":
        c.put(k, emb(10))
    assert c.nbytes == 480 and len(c) == 3
    assert c.get("a") is not None                    # a is now the most recent
    c.put("d", emb(10))
    assert "b" not in c and {"a", "c", "d"} <= set(c._mem) and c.evictions == 1
    assert c.get("b") is None and c.misses == 1


def test_an_embedding_in_use_is_never_evicted():
    c = ImageCache(max_bytes=160)
    c.put("a", emb(10))
    with c.in_use(["a", "b"]):
        c.put("b", emb(10))                          # over budget, but both are needed right now
        assert "a" in c and "b" in c and c.nbytes == 320
    assert len(c) == 1 and c.nbytes <= 160           # released: the budget holds again


def test_disk_tier_survives_a_restart_and_rejects_corruption(tmp_path):
    a = ImageCache(max_bytes=1000, disk_dir=tmp_path, namespace="mm1")
    a.put("k1", emb(3, 2.5))
    b = ImageCache(max_bytes=1000, disk_dir=tmp_path, namespace="mm1")      # a new process
    got = b.get("k1")
    assert got is not None and np.array_equal(got, emb(3, 2.5)) and b.disk_hits == 1
    assert ImageCache(disk_dir=tmp_path, namespace="mm2").get("k1") is None  # another projector
    path = next(Path(tmp_path, "mm1").rglob("k1.emb"))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF                                                         # one flipped bit
    path.write_bytes(bytes(data))
    c = ImageCache(disk_dir=tmp_path, namespace="mm1")
    assert c.get("k1") is None and c.corrupt == 1 and not path.exists()       # detected, dropped
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGSEMB1\0short")
    assert c.get("k1") is None and c.corrupt == 2


def test_file_identity_depends_on_content(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "b").write_bytes(b"x" * 99 + b"y")
    assert file_identity(tmp_path / "a") != file_identity(tmp_path / "b")
    with pytest.raises(ValueError):
        ImageCache(max_bytes=-1)


ROOT = Path(__file__).parent / "data" / "conformance" / "qwen25vl"


def test_follow_up_turns_and_new_chats_skip_the_tower(tmp_path):
    import ggsight
    img = str(ROOT / "one_image_non_square-0.png")
    load = lambda: ggsight.load(ROOT / "text.gguf", mmproj=ROOT / "mmproj.gguf", n_ctx=256,
                                image_cache_dir=tmp_path)
    m = load()
    turn = [{"role": "user", "content": "what is it", "images": [img]}]
    m.chat(turn, options={"temperature": 0, "num_predict": 2})
    m.chat(turn + [{"role": "assistant", "content": "a b"}, {"role": "user", "content": "and?"}],
           options={"temperature": 0, "num_predict": 2})
    edited = [{"role": "user", "content": "describe it", "images": [img]}]
    m.chat(edited, options={"temperature": 0, "num_predict": 2})
    assert m.image_encodes == 1
    again = load()                                   # restarted: the disk tier answers
    r = again.chat(turn, options={"temperature": 0, "num_predict": 2})
    assert r.done and again.image_encodes == 0 and again.image_cache.disk_hits == 1
    tiny = ggsight.load(ROOT / "text.gguf", mmproj=ROOT / "mmproj.gguf", n_ctx=256, image_cache_bytes=0)
    tiny.evaluate(ggsight.IMAGE, images=[img])
    tiny.evaluate(ggsight.IMAGE, images=[img])
    assert tiny.image_encodes == 2 and len(tiny.image_cache) == 0   # a zero budget caches nothing
