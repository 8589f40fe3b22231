"""Qwen2.5-VL image preprocessing against HF's Qwen2VLImageProcessorPil (pixel values and
image_grid_thw equal). The smart_resize tables at the top need neither torch nor transformers."""
import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from ggsight.models.qwen25vl.processor import (QwenImageConfig, preprocess, smart_resize,  # noqa: E402
                                               to_hf_patches)


def make(w, h, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    bands = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)


# (height, width) -> HF's resized (height, width) with the default min/max pixels
SMART_RESIZE = [
    ((1080, 1920), (728, 1316)),   # > max_pixels: scaled down, floored to multiples of 28
    ((2000, 600), (1820, 532)),
    ((20, 20), (56, 56)),          # < min_pixels: scaled up, ceiled
    ((70, 98), (56, 112)),         # halves round to even: 2.5 -> 2, 3.5 -> 4
    ((50, 2000), (56, 1988)),
    ((1, 150), (28, 700)),         # rounds to 0 rows, then rescued by the min_pixels branch
    ((28, 5600), (28, 5600)),      # aspect ratio exactly 200 is allowed
]


@pytest.mark.parametrize("hw,expected", SMART_RESIZE, ids=[f"{h}x{w}" for (h, w), _ in SMART_RESIZE])
def test_smart_resize_table(hw, expected):
    assert smart_resize(*hw) == expected


def test_extreme_aspect_ratio_and_empty_images_raise_value_error():
    with pytest.raises(ValueError, match="aspect ratio 201.0.*at most 200"):
        smart_resize(10, 2010)
    with pytest.raises(ValueError, match="aspect ratio"):
        preprocess(make(4000, 10))
    for w, h in [(0, 10), (10, 0), (0, 0)]:
        with pytest.raises(ValueError, match=rf"image is empty \({w}x{h} pixels\)"):
            preprocess(Image.new("RGB", (w, h)))


def test_token_budget_and_from_gguf():
    cfg = QwenImageConfig().with_token_budget(256)
    assert (cfg.min_pixels, cfg.max_pixels) == (3136, 256 * 28 * 28)
    tiny = QwenImageConfig().with_token_budget(2)                 # min_pixels lowered to stay <= max
    assert (tiny.min_pixels, tiny.max_pixels) == (1568, 1568)
    with pytest.raises(ValueError):
        QwenImageConfig().with_token_budget(0)
    meta = {"clip.vision.patch_size": 14, "clip.vision.image_mean": [0.5] * 3, "clip.vision.image_std": [0.5] * 3,
            "clip.vision.max_pixels": 12845056}
    cfg = QwenImageConfig.from_gguf(meta, min_pixels=1000)
    assert (cfg.min_pixels, cfg.max_pixels, cfg.mean, cfg.std) == (1000, 12845056, (0.5,) * 3, (0.5,) * 3)
    assert QwenImageConfig.from_gguf({"clip.vision.image_min_pixels": 6272}).min_pixels == 6272  # llama.cpp name
    assert QwenImageConfig.from_gguf({}) == QwenImageConfig()


def test_hf_patch_order_on_a_labelled_image():
    cfg = QwenImageConfig()
    h, w = 56, 84                                                   # 4x6 patches, 2x3 merge blocks
    pixels = np.broadcast_to((np.arange(h)[:, None] // 14 * 100 + np.arange(w)[None] // 14).astype(np.float32),
                             (3, h, w))
    rows = to_hf_patches(pixels, cfg)
    assert rows.shape == (24, 3 * 2 * 14 * 14)
    # first merge block is patches (0,0) (0,1) (1,0) (1,1), then the block to its right
    assert [int(r[0]) for r in rows[:8]] == [0, 1, 100, 101, 2, 3, 102, 103]
    assert all(len(set(r.tolist())) == 1 for r in rows)            # every row is one patch, all frames


# ---- comparisons with HF (torch + transformers) ------------------------------------------------

def hf_processor(**size):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if size:
        return transformers.Qwen2VLImageProcessorPil(size={"shortest_edge": size["min_pixels"],
                                                           "longest_edge": size["max_pixels"]})
    return transformers.Qwen2VLImageProcessorPil()


CASES = [("1920x1080", make(1920, 1080)), ("600x2000", make(600, 2000, seed=1)), ("small", make(20, 20)),
         ("wide", make(2000, 50, seed=2)), ("tall", make(50, 2000, seed=3)), ("rgba", make(640, 480, "RGBA")),
         ("grey", make(333, 222, "L")), ("exact_multiple", make(560, 280))]


def assert_equal_to_hf(img, cfg, ref):
    pixels, grid = preprocess(img, cfg)
    assert pixels.dtype == np.float32 and pixels.shape[1] % cfg.factor == 0 and pixels.shape[2] % cfg.factor == 0
    assert [list(grid)] == ref["image_grid_thw"].tolist()
    got = to_hf_patches(pixels, cfg)
    assert got.shape == ref["pixel_values"].shape
    np.testing.assert_array_equal(got, ref["pixel_values"])        # bit-equal, not just close


@pytest.mark.torch
@pytest.mark.parametrize("name,img", CASES, ids=[c[0] for c in CASES])
def test_pixels_and_grid_equal_hf(name, img):
    assert_equal_to_hf(img, QwenImageConfig(), hf_processor()(images=img, return_tensors="np"))


@pytest.mark.torch
@pytest.mark.parametrize("tokens,size", [(256, (1920, 1080)), (64, (2000, 50)), (2, (300, 200))])
def test_token_budget_equals_hf_max_pixels(tokens, size):
    cfg = QwenImageConfig().with_token_budget(tokens)
    img = make(*size, seed=4)
    ref = hf_processor(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)(images=img, return_tensors="np")
    assert_equal_to_hf(img, cfg, ref)


@pytest.mark.torch
def test_smart_resize_equals_hf_on_many_sizes():
    hf_processor()
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize
    rng = np.random.default_rng(0)
    sizes = [tuple(int(x) for x in s) for s in rng.integers(1, 5000, (3000, 2))]
    sizes += [(h, w) for h in range(1, 120, 7) for w in range(1, 120, 5)]
    for budget in [(3136, 1003520), (3136, 12845056), (784, 784 * 64)]:
        for h, w in sizes:
            try:
                ref = hf_smart_resize(h, w, 28, *budget)
            except ValueError:
                with pytest.raises(ValueError):
                    smart_resize(h, w, 28, *budget)
                continue
            assert smart_resize(h, w, 28, *budget) == ref, (h, w, budget)


@pytest.mark.torch
def test_hf_also_rejects_aspect_ratio_over_200():
    with pytest.raises(ValueError, match="aspect ratio"):
        hf_processor()(images=make(4000, 10), return_tensors="np")


@pytest.mark.torch
def test_print_token_table():
    proc, merge = hf_processor(), QwenImageConfig().merge_size
    print(f"\n{'image (WxH)':>12} {'ours (t,h,w)':>14} {'HF (t,h,w)':>14} {'tokens':>7} {'HF tokens':>9}")
    for w, h in [(1920, 1080), (600, 2000), (1280, 720), (640, 480), (20, 20), (2000, 50), (50, 2000)]:
        img = make(w, h)
        _, grid = preprocess(img)
        ref = tuple(proc(images=img, return_tensors="np")["image_grid_thw"][0].tolist())
        tokens, ref_tokens = grid[1] * grid[2] // merge ** 2, ref[1] * ref[2] // merge ** 2
        print(f"{f'{w}x{h}':>12} {str(grid):>14} {str(ref):>14} {tokens:>7} {ref_tokens:>9}")
        assert grid == ref
