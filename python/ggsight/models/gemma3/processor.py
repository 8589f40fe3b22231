"""Gemma 3 image preprocessing, equal to HF's Gemma3ImageProcessorPil (Pillow resize of the
uint8 image, then rescale and normalise in float32), with optional pan-and-scan crops."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...vision import load_image, to_rgb


@dataclass(frozen=True)
class Gemma3ImageConfig:
    image_size: int = 896
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    pan_and_scan: bool = False
    pas_min_crop_size: int = 256
    pas_max_crops: int = 4
    pas_min_ratio: float = 1.2

    @classmethod
    def from_gguf(cls, gguf, **overrides) -> "Gemma3ImageConfig":
        size = gguf.get("clip.vision.image_size", 896)
        mean = gguf.get("clip.vision.image_mean")
        std = gguf.get("clip.vision.image_std")
        return cls(image_size=int(size),
                   mean=tuple(float(x) for x in mean) if mean is not None else (0.5,) * 3,
                   std=tuple(float(x) for x in std) if std is not None else (0.5,) * 3, **overrides)


def pan_and_scan_boxes(width: int, height: int, cfg: Gemma3ImageConfig) -> list[tuple[int, int, int, int]]:
    """Crop boxes (left, top, right, bottom) HF's pan-and-scan would take; [] when it would not."""
    if width >= height:
        if width / height < cfg.pas_min_ratio:
            return []
        n_w = min(int(math.floor(width / cfg.pas_min_crop_size)), int(math.floor(width / height + 0.5)))
        n_w, n_h = min(cfg.pas_max_crops, max(2, n_w)), 1
    else:
        if height / width < cfg.pas_min_ratio:
            return []
        n_h = min(int(math.floor(height / cfg.pas_min_crop_size)), int(math.floor(height / width + 0.5)))
        n_w, n_h = 1, min(cfg.pas_max_crops, max(2, n_h))
    crop_w, crop_h = int(math.ceil(width / n_w)), int(math.ceil(height / n_h))
    if min(crop_w, crop_h) < cfg.pas_min_crop_size:
        return []
    # numpy slicing in HF clips the last crop at the image border
    return [(x * crop_w, y * crop_h, min(width, (x + 1) * crop_w), min(height, (y + 1) * crop_h))
            for y in range(n_h) for x in range(n_w)]


def _pixels(img, cfg: Gemma3ImageConfig) -> np.ndarray:
    from PIL import Image
    resized = img.resize((cfg.image_size, cfg.image_size), Image.Resampling.BILINEAR)
    arr = np.asarray(resized).transpose(2, 0, 1)                       # CHW uint8
    scaled = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)    # HF rescales in float64
    mean = np.array(cfg.mean, np.float32)[:, None, None]
    std = np.array(cfg.std, np.float32)[:, None, None]
    return (scaled - mean) / std                                       # [3, size, size] float32


def preprocess(image, cfg: Gemma3ImageConfig = Gemma3ImageConfig()) -> np.ndarray:
    """pixel values [n_images, 3, size, size]: the image, then its pan-and-scan crops if enabled."""
    img = to_rgb(load_image(image))
    crops = [img.crop(box) for box in pan_and_scan_boxes(img.width, img.height, cfg)] if cfg.pan_and_scan else []
    return np.stack([_pixels(x, cfg) for x in [img] + crops])
