"""Images a user passes that must be refused with a clear error (empty, too many pixels), and the
on-disk image-embedding cache of image_cache_dir=True, through the public API of a tiny Gemma 3
(the committed conformance fixture)."""
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.vision import ImageError, load_image

ROOT = Path(__file__).parent / "data" / "conformance" / "gemma3"
IMAGE = str(ROOT / "one_image_non_native-0.png")


@pytest.fixture(scope="module")
def vl():
    return ggsight.load(ROOT / "text.gguf", mmproj=ROOT / "mmproj.gguf", n_ctx=128, kv_type="f32")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds no pixel data: what a decompression bomb
    looks like before it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("arr", [np.zeros((0, 10, 3), np.uint8), np.zeros((7, 0), np.uint8),
                                 np.zeros((0, 0, 4), np.float32)], ids=["no-rows", "grey-no-cols", "float-empty"])
def test_an_empty_image_array_is_refused(vl, arr):
    with pytest.raises(ImageError, match=r"image array is empty \(shape"):
        vl.evaluate("look" + ggsight.IMAGE, images=[arr])
    assert vl.image_encodes == 0


def test_an_empty_pil_image_is_refused(vl):
    from PIL import Image
    with pytest.raises(ImageError, match="empty"):
        vl.generate("look", images=[Image.new("RGB", (0, 5))], max_tokens=1)


@pytest.mark.parametrize("as_path", [True, False])
def test_a_huge_image_is_refused_before_decoding(vl, tmp_path, as_path):
    data = png_header_only(20000, 20000)   # 400 M pixels declared, a few bytes on disk
    source = tmp_path / "bomb.png" if as_path else data
    if as_path:
        source.write_bytes(data)
    with pytest.raises(ImageError, match="pixels") as e:
        vl.evaluate("look" + ggsight.IMAGE, images=[source])
    assert ("bomb.png" if as_path else "image bytes") in str(e.value)


def test_the_pixel_limit_is_ggsights_own(tmp_path):
    from PIL import Image
    path = tmp_path / "small.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(path)
    with pytest.raises(ImageError, match=r"40x30 is larger than 1000 pixels"):
        load_image(path, max_pixels=1000)
    assert load_image(path, max_pixels=1200).size == (40, 30)


@pytest.mark.parametrize("xdg", [False, True])
def test_image_cache_dir_true_persists_under_the_user_cache(tmp_path, monkeypatch, xdg):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    if xdg:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    else:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    where = (tmp_path / "xdg" if xdg else home / ".cache") / "ggsight"

    def load():
        return ggsight.load(ROOT / "text.gguf", mmproj=ROOT / "mmproj.gguf", n_ctx=128, kv_type="f32",
                            image_cache_dir=True)
    first = load()
    _, want = first.evaluate("a" + ggsight.IMAGE + "b", images=[IMAGE])
    assert first.image_encodes == 1
    files = [p for p in where.rglob("*") if p.is_file()]
    assert files and all(p.stat().st_size > 0 for p in files), f"nothing written under {where}"
    again = load()                                   # a new process would see the same files
    _, got = again.evaluate("a" + ggsight.IMAGE + "b", images=[IMAGE])
    assert again.image_encodes == 0 and again.image_cache.disk_hits == 1
    np.testing.assert_array_equal(got, want)
