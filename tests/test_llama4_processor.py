"""Llama 4 image preprocessing against HF's Llama4ImageProcessor, from fixtures recorded by
tests/make_llama4_processor_fixtures.py (HF needs torchvision; these tests need neither it nor
torch): bf16 pixel values bit for bit, aspect ratios, canvases and resized sizes."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from ggsight.models.llama4.processor import (Llama4ImageConfig, best_fit, fit_size, preprocess,  # noqa: E402
                                             supported_resolutions)

DATA = Path(__file__).parent / "data" / "llama4_processor"
CASES = sorted(p.stem for p in DATA.glob("*.png"))


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """Our float32 output holds bf16 values: the low 16 bits must be zero."""
    bits = np.asarray(x, np.float32).view(np.uint32)
    assert not (bits & 0xFFFF).any(), "values are not bfloat16-exact"
    return (bits >> 16).astype(np.uint16)


def from_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def test_fixtures_present():
    assert len(CASES) >= 8 and (DATA / "canvases.npz").is_file()


@pytest.mark.parametrize("name", CASES)
def test_pixels_equal_hf(name):
    ref = np.load(DATA / f"{name}.npz")
    cfg = Llama4ImageConfig(tile_size=int(ref["tile_size"]), max_patches=int(ref["max_patches"]),
                            resize_to_max_canvas=bool(ref["resize_to_max_canvas"]),
                            mean=tuple(ref["mean"].tolist()), std=tuple(ref["std"].tolist()))
    pixels, aspect = preprocess(DATA / f"{name}.png", cfg)
    assert aspect == tuple(ref["aspect_ratios"].tolist())
    assert pixels.dtype == np.float32 and pixels.shape == ref["pixel_bits"].shape
    ours, theirs = bf16_bits(pixels), ref["pixel_bits"]
    differ = ours != theirs
    max_diff = np.abs(from_bits(ours) - from_bits(theirs)).max()
    assert not differ.any(), f"{differ.mean():.4%} of values differ, max abs {max_diff} ({ref['versions']})"


@pytest.mark.parametrize("key,max_canvas", [("default", False), ("max_canvas", True)])
def test_canvases_and_resized_sizes_equal_hf(key, max_canvas):
    cfg = Llama4ImageConfig(resize_to_max_canvas=max_canvas)
    table = np.load(DATA / "canvases.npz")[key]
    got = [[h, w, *best_fit(h, w, cfg), *(np.array(best_fit(h, w, cfg)) // 336), *fit_size(h, w, cfg)]
           for h, w in table[:, :2].tolist()]
    assert np.array(got).tolist() == table.tolist()


def test_supported_resolutions_equal_hf_order():
    ref = np.load(DATA / "canvases.npz")["supported_16_336"]
    assert supported_resolutions(16, 336) == [tuple(r) for r in ref.tolist()]


def test_supported_resolutions_by_hand():
    # HF's docstring list for 4 chunks of 224: grouped by aspect ratio in order of first
    # appearance, counting chunks down from 4 (so 2x2 comes before 1x1)
    assert supported_resolutions(4, 224) == [(224, 896), (448, 448), (224, 224), (896, 224), (224, 672),
                                             (672, 224), (224, 448), (448, 224)]
    assert supported_resolutions(1, 336) == [(336, 336)]
    # every (rows, cols) with rows * cols <= 16 once: a pair fixes its tile count
    grid = [(r, c) for r in range(1, 17) for c in range(1, 17) if r * c <= 16]
    assert sorted(supported_resolutions(16, 1)) == sorted(grid)


BEST_FIT = [
    # (height, width), config -> canvas, resized
    ((200, 300), Llama4ImageConfig(tile_size=224, max_patches=4), (224, 448), (200, 300)),  # HF docstring
    ((336, 336), Llama4ImageConfig(), (336, 336), (336, 336)),
    ((100, 100), Llama4ImageConfig(), (336, 336), (336, 336)),      # small: upscaled to one tile
    ((400, 400), Llama4ImageConfig(), (672, 672), (400, 400)),      # never upscaled past a tile
    ((1080, 1920), Llama4ImageConfig(), (1008, 1680), (945, 1680)),  # 3x5 is the mildest downscale
    ((2096, 2096), Llama4ImageConfig(), (1344, 1344), (1344, 1343)),  # HF's float32 floor
    ((40, 70), Llama4ImageConfig(tile_size=28, resize_to_max_canvas=True), (84, 140), (80, 140)),
]


@pytest.mark.parametrize("hw,cfg,canvas,resized", BEST_FIT, ids=[f"{h}x{w}" for (h, w), *_ in BEST_FIT])
def test_best_fit_by_hand(hw, cfg, canvas, resized):
    assert best_fit(*hw, cfg) == canvas
    assert fit_size(*hw, cfg) == resized


def test_single_tile_has_no_global_tile_and_padding_is_black():
    pixels, aspect = preprocess(np.full((10, 28, 3), 255, np.uint8), Llama4ImageConfig(tile_size=28, max_patches=4))
    assert aspect == (1, 1) and pixels.shape == (1, 3, 28, 28)
    assert (pixels[0, :, :10] == 1.0).all() and (pixels[0, :, 10:] == -1.0).all()


def test_global_tile_is_last():
    img = np.zeros((28, 56, 3), np.uint8)
    img[:, 28:] = 255
    pixels, aspect = preprocess(img, Llama4ImageConfig(tile_size=28, max_patches=4))
    assert aspect == (1, 2) and pixels.shape == (3, 3, 28, 28)
    assert (pixels[0] == -1).all() and (pixels[1] == 1).all()
    assert pixels[2, :, :, :13].max() < 0 < pixels[2, :, :, 15:].min()


def test_from_gguf():
    gguf = {"clip.vision.image_size": 448, "clip.vision.image_mean": [0.1, 0.2, 0.3]}
    cfg = Llama4ImageConfig.from_gguf(gguf, max_patches=4)
    assert (cfg.tile_size, cfg.max_patches, cfg.mean, cfg.std) == (448, 4, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    assert Llama4ImageConfig.from_gguf({"clip.vision.max_patches": 9}).max_patches == 9
    assert Llama4ImageConfig.from_gguf({}) == Llama4ImageConfig()


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="at least 1 pixel"):
        best_fit(0, 10)
    with pytest.raises(ValueError, match=r"image is empty \(0x5 pixels\)"):
        preprocess(Image.new("RGB", (0, 5)))
    with pytest.raises(ValueError, match="not a readable image"):
        preprocess(b"definitely not a png")
