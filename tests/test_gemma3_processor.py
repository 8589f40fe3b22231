"""Gemma 3 image preprocessing against HF's Gemma3ImageProcessorPil (pixel values equal)."""
import io

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from ggsight.models.gemma3.processor import Gemma3ImageConfig, pan_and_scan_boxes, preprocess  # noqa: E402
from ggsight.vision import ImageError  # noqa: E402


def make(w, h, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    bands = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)


CASES = [("square", make(896, 896)), ("small", make(37, 50)), ("wide", make(1920, 1080)),
         ("tall", make(300, 1000)), ("rgba", make(640, 480, "RGBA")), ("grey", make(200, 150, "L")),
         ("palette_transparent", make(64, 64).convert("P"))]
CASES[-1][1].info["transparency"] = 3


def hf_processor():
    transformers = pytest.importorskip("transformers")
    return transformers.Gemma3ImageProcessorPil(size={"height": 896, "width": 896}, image_mean=[0.5] * 3,
                                                image_std=[0.5] * 3)


@pytest.mark.torch
@pytest.mark.parametrize("name,img", CASES, ids=[c[0] for c in CASES])
def test_pixels_equal_hf_pil_processor(name, img):
    ref = hf_processor()(images=img, return_tensors="np")["pixel_values"]
    got = preprocess(img)
    assert got.shape == ref.shape == (1, 3, 896, 896) and got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)


@pytest.mark.torch
@pytest.mark.parametrize("size", [(1920, 600), (500, 1400), (1000, 900), (700, 300)])
def test_pan_and_scan_equals_hf(size):
    img = make(*size, seed=3)
    ref = hf_processor()(images=img, do_pan_and_scan=True, pan_and_scan_min_crop_size=256,
                         pan_and_scan_max_num_crops=4, pan_and_scan_min_ratio_to_activate=1.2,
                         return_tensors="np")
    got = preprocess(img, Gemma3ImageConfig(pan_and_scan=True))
    assert got.shape[0] == 1 + int(ref["num_crops"][0])
    np.testing.assert_array_equal(got, ref["pixel_values"])


def test_pan_and_scan_boxes_table():
    cfg = Gemma3ImageConfig(pan_and_scan=True)
    assert pan_and_scan_boxes(1000, 900, cfg) == []             # not elongated enough
    assert pan_and_scan_boxes(1920, 600, cfg) == [(0, 0, 640, 600), (640, 0, 1280, 600), (1280, 0, 1920, 600)]
    assert pan_and_scan_boxes(200, 700, cfg) == []               # crops would be < 256 px wide
    assert pan_and_scan_boxes(300, 700, cfg) == [(0, 0, 300, 350), (0, 350, 300, 700)]
    assert len(pan_and_scan_boxes(4000, 500, cfg)) == 4          # capped


def test_inputs_of_every_kind_and_bad_ones(tmp_path):
    img = make(64, 48)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(buf.getvalue())
    ref = preprocess(img)
    for source in (path, str(path), buf.getvalue(), np.asarray(img)):
        np.testing.assert_array_equal(preprocess(source), ref)
    with pytest.raises(ImageError, match="not found"):
        preprocess(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="not a readable image"):
        preprocess(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match="shape"):
        preprocess(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="unsupported image type"):
        preprocess(42)
