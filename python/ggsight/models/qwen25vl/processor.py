"""Qwen2.5-VL image preprocessing, equal to HF's Qwen2VLImageProcessorPil for still images:
smart_resize to multiples of patch*merge, Pillow BICUBIC resize of the uint8 image, then rescale
(in float64, as HF does) and normalise in float32."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ...vision import ImageError, load_image, to_rgb

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200


@dataclass(frozen=True)
class QwenImageConfig:
    patch_size: int = 14
    merge_size: int = 2                 # 2x2 patches are merged into one LLM token
    temporal_patch_size: int = 2        # a still image is repeated over this many frames
    min_pixels: int = 56 * 56           # HF class defaults (size shortest_edge / longest_edge);
    max_pixels: int = 28 * 28 * 1280    # released checkpoints ship their own in preprocessor_config
    mean: tuple = OPENAI_CLIP_MEAN
    std: tuple = OPENAI_CLIP_STD

    @property
    def factor(self) -> int:
        """Side of the pixel square that becomes one LLM token."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_gguf(cls, gguf, **overrides) -> "QwenImageConfig":
        def pixels(name, default):
            # llama.cpp's name (clip.vision.image_min_pixels), then the one earlier ggsight files used
            value = gguf.get(f"clip.vision.image_{name}", None)
            value = gguf.get(f"clip.vision.{name}", None) if value is None else value
            return int(value) if value is not None else default

        mean = gguf.get("clip.vision.image_mean", None)
        std = gguf.get("clip.vision.image_std", None)
        fields = dict(patch_size=int(gguf.get("clip.vision.patch_size", cls.patch_size)),
                      min_pixels=pixels("min_pixels", cls.min_pixels),
                      max_pixels=pixels("max_pixels", cls.max_pixels),
                      mean=tuple(float(x) for x in mean) if mean is not None else OPENAI_CLIP_MEAN,
                      std=tuple(float(x) for x in std) if std is not None else OPENAI_CLIP_STD)
        return cls(**{**fields, **overrides})

    def with_token_budget(self, max_tokens: int) -> "QwenImageConfig":
        """This config with at most about max_tokens image tokens (see smart_resize for the
        extreme aspect ratios where HF's arithmetic overshoots it)."""
        if int(max_tokens) < 1:
            raise ValueError(f"an image token budget must be at least 1, got {max_tokens}")
        max_pixels = int(max_tokens) * self.factor ** 2
        return replace(self, max_pixels=max_pixels, min_pixels=min(self.min_pixels, max_pixels))


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """(height, width) HF resizes to: multiples of factor, area within [min_pixels, max_pixels],
    aspect ratio kept as well as that allows. The arithmetic is HF's, expression for expression
    (Python's round() rounds halves to even: 70 px -> 2.5 -> 56, not 84), so sizes match exactly.
    Like HF, max(factor, ...) can push very elongated images past max_pixels."""
    if height <= 0 or width <= 0:
        raise ImageError(f"cannot process a {width}x{height} image: both sides must be at least 1 pixel")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ImageError(f"a {width}x{height} image has aspect ratio {max(height, width) / min(height, width):.1f};"
                         f" Qwen2.5-VL (like HF's processor) accepts at most {MAX_ASPECT_RATIO}: crop or pad it")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def largest_size(cfg: QwenImageConfig = QwenImageConfig()) -> tuple[int, int]:
    """(height, width) of the resized image with the most patches under cfg (what the memory
    planner sizes the tower for): the largest area of whole factor blocks within max_pixels, which
    an image of that size keeps, or the most elongated image's, where HF's max(factor, ...) lets
    a small max_pixels be exceeded."""
    f = cfg.factor
    sizes = [smart_resize(2 ** 20, 2 ** 20 * MAX_ASPECT_RATIO, f, cfg.min_pixels, cfg.max_pixels)]
    h = f
    while h * h <= cfg.max_pixels:
        w = min(cfg.max_pixels // h // f, h * MAX_ASPECT_RATIO // f) * f
        if w >= h:
            sizes.append(smart_resize(h, w, f, cfg.min_pixels, cfg.max_pixels))
        h += f
    return max(sizes, key=lambda hw: (hw[0] * hw[1], min(hw)))  # ties: the squarer one


def preprocess(image, cfg: QwenImageConfig = QwenImageConfig()) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(pixels [3, H, W] float32 with H, W multiples of patch*merge, grid (t, h, w) in patches),
    the grid being HF's image_grid_thw; h * w / merge**2 image tokens."""
    from PIL import Image
    img = to_rgb(load_image(image))
    height, width = smart_resize(img.height, img.width, cfg.factor, cfg.min_pixels, cfg.max_pixels)
    resized = img.resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(resized).transpose(2, 0, 1)                        # [3, H, W] uint8
    scaled = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)     # HF rescales in float64
    mean = np.array(cfg.mean, np.float32)[:, None, None]
    std = np.array(cfg.std, np.float32)[:, None, None]
    pixels = (scaled - mean) / std                                      # [3, H, W] float32
    return pixels, (1, height // cfg.patch_size, width // cfg.patch_size)


def to_hf_patches(pixels: np.ndarray, cfg: QwenImageConfig = QwenImageConfig()) -> np.ndarray:
    """HF's pixel_values [t*h*w, 3 * temporal * patch * patch] for our [3, H, W]: patches in
    merge-block-major order (each 2x2 merge block contiguous), each flattened as (C, T, py, px)
    with the still image repeated over T."""
    c, height, width = pixels.shape
    p, m, t = cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size
    gh, gw = height // p, width // p
    x = pixels.reshape(c, gh // m, m, p, gw // m, m, p)                # [C, bh, my, py, bw, mx, px]
    x = x.transpose(1, 4, 2, 5, 0, 3, 6)                               # [bh, bw, my, mx, C, py, px]
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], t, p, p))  # [..., C, T, py, px]
    return x.reshape(gh * gw, c * t * p * p)
