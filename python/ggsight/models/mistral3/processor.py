"""Mistral 3 / Pixtral image preprocessing, equal to HF's PixtralImageProcessorPil as
PixtralProcessor drives it: an image whose longest edge exceeds `longest_edge` is scaled down
(each side floored), then each side is rounded up to a multiple of patch x merge (28 px for
Mistral Small 3.1, so images are upscaled a little too), Pillow BICUBIC on the uint8 image,
rescale (in float64, as HF does) and normalise in float32. No token cap beyond that: HF's budget
(Mistral Small 3.1: up to 55 x 55 tokens), not llama.cpp's 1024."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ...vision import ImageError, load_image, to_rgb

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PixtralImageConfig:
    longest_edge: int = 1540            # Mistral Small 3.1 (Pixtral 12B: 1024)
    patch_size: int = 14
    merge_size: int = 2                 # 2x2 patches are merged into one LLM token
    mean: tuple = OPENAI_CLIP_MEAN
    std: tuple = OPENAI_CLIP_STD

    @property
    def factor(self) -> int:
        """Side of the pixel square that becomes one LLM token."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_gguf(cls, gguf, merge_size: int, **overrides) -> "PixtralImageConfig":
        mean = gguf.get("clip.vision.image_mean", None)
        std = gguf.get("clip.vision.image_std", None)
        # clip.vision.image_size is the tower's image_size, which is the processor's longest edge
        # in released checkpoints (llama.cpp's converter writes nothing else)
        fields = dict(longest_edge=int(gguf.get("clip.vision.image_size", cls.longest_edge)),
                      patch_size=int(gguf.get("clip.vision.patch_size", cls.patch_size)), merge_size=merge_size,
                      mean=tuple(float(x) for x in mean) if mean is not None else OPENAI_CLIP_MEAN,
                      std=tuple(float(x) for x in std) if std is not None else OPENAI_CLIP_STD)
        return cls(**{**fields, **overrides})


def resized_size(height: int, width: int, cfg: PixtralImageConfig = PixtralImageConfig()) -> tuple[int, int]:
    """(height, width) HF resizes to (get_resize_output_image_size with patch x merge)."""
    if height <= 0 or width <= 0:
        raise ImageError(f"cannot process a {width}x{height} image: both sides must be at least 1 pixel")
    ratio = max(height / cfg.longest_edge, width / cfg.longest_edge)
    if ratio > 1:
        # HF floors (the original used round, which could overshoot the longest edge)
        height, width = int(math.floor(height / ratio)), int(math.floor(width / ratio))
    f = cfg.factor
    # (side - 1) // f + 1 tokens, as HF; a side the scaling floored to 0 pixels gets one token
    # (HF would ask Pillow for an empty image and fail)
    return max((height - 1) // f + 1, 1) * f, max((width - 1) // f + 1, 1) * f


def token_grid(height: int, width: int, cfg: PixtralImageConfig = PixtralImageConfig()) -> tuple[int, int]:
    """(rows, cols) of [IMG] tokens of an image of this size."""
    h, w = resized_size(height, width, cfg)
    return h // cfg.factor, w // cfg.factor


def with_token_budget(height: int, width: int, cfg: PixtralImageConfig, max_tokens: int) -> PixtralImageConfig:
    """cfg with the largest longest_edge (at most cfg's) that gives this image at most
    max_tokens [IMG] tokens (one token is always possible)."""
    if int(max_tokens) < 1:
        raise ValueError(f"an image token budget must be at least 1, got {max_tokens}")
    lo, hi = 1, cfg.longest_edge
    while lo < hi:   # token counts grow with the edge: the largest edge within the budget
        mid = (lo + hi + 1) // 2
        rows, cols = token_grid(height, width, replace(cfg, longest_edge=mid))
        lo, hi = (mid, hi) if rows * cols <= max_tokens else (lo, mid - 1)
    return replace(cfg, longest_edge=lo)


def preprocess(image, cfg: PixtralImageConfig = PixtralImageConfig(), max_tokens: int | None = None) -> np.ndarray:
    """pixels [3, H, W] float32, H and W multiples of patch x merge (HF's pixel_values for one
    image, without the padding to a batch's largest image)."""
    from PIL import Image
    img = to_rgb(load_image(image))
    if img.width <= 0 or img.height <= 0:
        raise ImageError(f"the image is empty ({img.width}x{img.height} pixels)")
    if max_tokens is not None:
        cfg = with_token_budget(img.height, img.width, cfg, max_tokens)
    height, width = resized_size(img.height, img.width, cfg)
    resized = img.resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(resized).transpose(2, 0, 1)                        # [3, H, W] uint8
    scaled = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)     # HF rescales in float64
    mean = np.array(cfg.mean, np.float32)[:, None, None]
    std = np.array(cfg.std, np.float32)[:, None, None]
    return (scaled - mean) / std                                        # [3, H, W] float32


def largest_size(cfg: PixtralImageConfig = PixtralImageConfig()) -> tuple[int, int]:
    """(height, width) of the largest resized image: a square at the longest edge."""
    side = ((cfg.longest_edge - 1) // cfg.factor + 1) * cfg.factor
    return side, side
