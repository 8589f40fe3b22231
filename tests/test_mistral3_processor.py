"""Mistral 3 / Pixtral image preprocessing and prompt layout against HF: pixel values equal to
PixtralImageProcessorPil's (as PixtralProcessor drives it: patch x merge = 28 px), the text equal
to PixtralProcessor.replace_image_token's. The size tables at the top need neither torch nor
transformers."""
import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from ggsight.models.mistral3.images import Mistral3Images  # noqa: E402
from ggsight.models.mistral3.processor import (PixtralImageConfig, largest_size, preprocess,  # noqa: E402
                                               resized_size, token_grid, with_token_budget)

MISTRAL_SMALL = PixtralImageConfig()                                         # 1540 px, 14 px x 2
PIXTRAL_12B = PixtralImageConfig(longest_edge=1024, patch_size=16, merge_size=1)
TINY = PixtralImageConfig(longest_edge=168)                                  # the tiny test model's


def make(w, h, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    bands = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)


# (config, (height, width)) -> HF's resized (height, width)
RESIZED = [
    (MISTRAL_SMALL, (1080, 1920), (868, 1540)),  # longest edge 1920 > 1540: 866.25 floored, then up to 28s
    (MISTRAL_SMALL, (1540, 1540), (1540, 1540)),  # exactly the edge: 55 x 55 tokens, no cap at 1024
    (MISTRAL_SMALL, (100, 30), (112, 56)),       # small images are rounded up, never down
    (MISTRAL_SMALL, (28, 28), (28, 28)),
    (MISTRAL_SMALL, (1, 4000), (28, 1540)),      # a side floored to 0 gets one token (HF fails)
    (PIXTRAL_12B, (1000, 3000), (352, 1024)),    # Pixtral 12B: 16 px tokens, 1024 px edge
    (TINY, (130, 200), (112, 168)),
    (TINY, (90, 60), (112, 84)),
]


@pytest.mark.parametrize("cfg,hw,expected", RESIZED, ids=[f"{c.longest_edge}-{h}x{w}" for c, (h, w), _ in RESIZED])
def test_resized_size_table(cfg, hw, expected):
    assert resized_size(*hw, cfg) == expected


def test_largest_image_and_token_budget():
    assert largest_size(MISTRAL_SMALL) == (1540, 1540) and token_grid(1540, 1540) == (55, 55)
    assert largest_size(TINY) == (168, 168)
    cfg = with_token_budget(1080, 1920, MISTRAL_SMALL, 1024)
    rows, cols = token_grid(1080, 1920, cfg)
    assert rows * cols <= 1024
    more = token_grid(1080, 1920, PixtralImageConfig(longest_edge=cfg.longest_edge + 1))
    assert more[0] * more[1] > 1024                                # the largest edge within the budget
    assert token_grid(1080, 1920, with_token_budget(1080, 1920, MISTRAL_SMALL, 1)) == (1, 1)
    with pytest.raises(ValueError):
        with_token_budget(10, 10, MISTRAL_SMALL, 0)
    for w, h in [(0, 10), (10, 0)]:
        with pytest.raises(ValueError, match="empty"):
            preprocess(Image.new("RGB", (w, h)), TINY)


def test_from_gguf_reads_the_edge_and_the_statistics():
    meta = {"clip.vision.image_size": 1024, "clip.vision.patch_size": 16, "clip.vision.image_mean": [0.5] * 3,
            "clip.vision.image_std": [0.25] * 3}
    cfg = PixtralImageConfig.from_gguf(meta, merge_size=1)
    assert (cfg.longest_edge, cfg.patch_size, cfg.factor, cfg.mean, cfg.std) == (1024, 16, 16, (0.5,) * 3, (0.25,) * 3)
    assert PixtralImageConfig.from_gguf({}, merge_size=2) == MISTRAL_SMALL
    assert PixtralImageConfig.from_gguf(meta, merge_size=1, longest_edge=512).longest_edge == 512


class _Glue(Mistral3Images):
    """The layout half of the glue, without a tower."""

    def __init__(self, cfg):
        self.image_config = cfg


@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 3), (3, 1), (4, 6)])
def test_layout_rows_breaks_and_end(rows, cols):
    glue = _Glue(TINY)
    view = np.zeros((3, rows * 28, cols * 28), np.float32)
    assert glue.tokens_of(view) == rows * cols and glue.grid(view) is None
    text = glue.layout([view])
    assert text == ("[IMG]" * cols + "[IMG_BREAK]") * (rows - 1) + "[IMG]" * cols + "[IMG_END]"


# ------------------------------------------------------------------ against transformers

SIZES = [(200, 130), (60, 90), (168, 168), (28, 28), (500, 40), (1, 1), (333, 170)]


def _hf(cfg: PixtralImageConfig):
    transformers = pytest.importorskip("transformers")
    return transformers.PixtralImageProcessorPil(size={"longest_edge": cfg.longest_edge}, patch_size=cfg.factor,
                                                 image_mean=list(cfg.mean), image_std=list(cfg.std))


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("w,h", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_pixels_equal_hf_pil_processor(w, h, mode):
    img = make(w, h, mode, seed=w * 7 + h)
    hf = _hf(TINY)(images=[img], return_tensors="np")
    ours = preprocess(img, TINY)
    assert tuple(hf["image_sizes"][0]) == ours.shape[1:]
    assert hf["pixel_values"][0].shape == ours.shape
    np.testing.assert_array_equal(hf["pixel_values"][0], ours)


@pytest.mark.torch
def test_large_image_equals_hf_at_mistral_small_size():
    img = make(1700, 900, seed=3)
    hf = _hf(MISTRAL_SMALL)(images=[img], return_tensors="np")
    ours = preprocess(img, MISTRAL_SMALL)
    assert ours.shape == (3, 840, 1540)
    np.testing.assert_array_equal(hf["pixel_values"][0], ours)


@pytest.mark.torch
def test_prompt_layout_equals_hf_replace_image_token():
    """Two images in one prompt: the expanded text is PixtralProcessor's, token for token."""
    from types import SimpleNamespace

    from make_conformance_mistral3 import pixtral_processor_class
    images = [make(200, 130), make(60, 90, seed=1), make(333, 170, seed=2)]
    hf = _hf(TINY)(images=images, return_tensors="np")
    this = SimpleNamespace(patch_size=14, spatial_merge_size=2, image_token="[IMG]",
                           image_break_token="[IMG_BREAK]", image_end_token="[IMG_END]")
    replace = pixtral_processor_class().replace_image_token
    glue = _Glue(TINY)
    for k, img in enumerate(images):
        assert glue.layout([preprocess(img, TINY)]) == replace(this, hf, k)
