"""Llama 4 image preprocessing, equal to HF's Llama4ImageProcessor (torchvision backend) for one
still image: pick a canvas of whole tiles, resize without distortion (never upscaling past one
tile unless resize_to_max_canvas), pad bottom/right with black, normalise in bfloat16, split into
tiles, and add a global tile (the whole image squashed to one tile) when there is more than one.

torchvision resizes uint8 images natively on CPU (AVX2/AVX-512/ARM): an antialiased bilinear
filter with int16 fixed-point weights and a uint8 intermediate between the horizontal and the
vertical pass. Pillow's BILINEAR is the same filter with 22-bit weights, so it is off by one grey
level now and then (2% of the final values in our fixtures); _resize below is PyTorch's integer
arithmetic, so the pixels are equal. (On x86 CPUs without AVX2 torchvision resizes in float32
instead, so HF itself gives slightly different pixels there; we follow the common path.)"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...vision import ImageError, load_image, to_rgb


@dataclass(frozen=True)
class Llama4ImageConfig:
    tile_size: int = 336                # HF size {"height": 336, "width": 336}
    max_patches: int = 16               # HF calls tiles "patches" here: at most this many tiles
    resize_to_max_canvas: bool = False
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)

    @classmethod
    def from_gguf(cls, gguf, **overrides) -> "Llama4ImageConfig":
        mean = gguf.get("clip.vision.image_mean", None)
        std = gguf.get("clip.vision.image_std", None)
        fields = dict(tile_size=int(gguf.get("clip.vision.image_size", cls.tile_size)),
                      max_patches=int(gguf.get("clip.vision.max_patches", cls.max_patches)),
                      mean=tuple(float(x) for x in mean) if mean is not None else cls.mean,
                      std=tuple(float(x) for x in std) if std is not None else cls.std)
        return cls(**{**fields, **overrides})


def supported_resolutions(max_patches: int, tile_size: int) -> list[tuple[int, int]]:
    """Canvases (height, width) of at most max_patches tiles, in HF's order: grouped by aspect
    ratio (in order of first appearance counting tiles down from max_patches), which matters
    because ties in best_fit go to the first smallest canvas."""
    by_ratio: dict[float, list[tuple[int, int]]] = {}
    for n in range(max_patches, 0, -1):
        for rows in sorted(d for d in range(1, n + 1) if n % d == 0):
            by_ratio.setdefault(rows / (n // rows), []).append((rows, n // rows))
    return [(r * tile_size, c * tile_size) for group in by_ratio.values() for r, c in group]


def best_fit(height: int, width: int, cfg: Llama4ImageConfig = Llama4ImageConfig()) -> tuple[int, int]:
    """The canvas (height, width) HF pads the image to: the smallest upscale (largest with
    resize_to_max_canvas) if any canvas allows one, else the mildest downscale; ties go to the
    smallest area. Scales are float32 as in HF (int tensor / int), so equal-scale ties match."""
    _check_size(height, width)
    canvases = np.array(supported_resolutions(cfg.max_patches, cfg.tile_size), np.int64)
    scale_h = canvases[:, 0].astype(np.float32) / np.float32(height)
    scale_w = canvases[:, 1].astype(np.float32) / np.float32(width)
    scales = np.minimum(scale_h, scale_w)
    up = scales[scales >= 1]
    if up.size:
        chosen = up.max() if cfg.resize_to_max_canvas else up.min()
    else:
        chosen = scales.max()
    candidates = canvases[scales == chosen]
    h, w = candidates[np.argmin(candidates[:, 0] * candidates[:, 1])]   # argmin: first smallest
    return int(h), int(w)


def fit_size(height: int, width: int, cfg: Llama4ImageConfig = Llama4ImageConfig()) -> tuple[int, int]:
    """(height, width) the image is resized to before padding to best_fit's canvas."""
    canvas_h, canvas_w = best_fit(height, width, cfg)
    if cfg.resize_to_max_canvas:
        target = [(canvas_h, True), (canvas_w, True)]
    else:
        # HF writes min(max(side, tile), canvas_side) with the canvas side a 0-d int64 tensor:
        # Python's min returns the tensor only when it is strictly smaller, and then the
        # division below happens in float32 instead of float64.
        target = [(min(max(side, cfg.tile_size), c), c < max(side, cfg.tile_size))
                  for side, c in ((height, canvas_h), (width, canvas_w))]
    (th, h32), (tw, w32) = target

    def scale(t, side, is32):
        return np.float32(t) / np.float32(side) if is32 else t / side

    def times(side, s, is32):
        return math.floor(np.float32(side) * s if is32 else side * s)

    scale_h, scale_w = scale(th, height, h32), scale(tw, width, w32)
    # a float32 tensor compared with a Python float compares in float32
    lower_w = (np.float32(scale_w) < np.float32(scale_h)) if (h32 or w32) else scale_w < scale_h
    if lower_w:
        new_h, new_w = min(times(height, scale_w, w32), th), tw
    else:
        new_h, new_w = th, min(times(width, scale_h, h32), tw)
    return max(int(new_h), 1), max(int(new_w), 1)


def _check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"cannot process a {width}x{height} image: both sides must be at least 1 pixel")


def _aa_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """PyTorch's antialiased bilinear taps for uint8 (HelperInterpLinear with
    _compute_index_ranges_int16_weights): first input index [out], int16 weights [out, taps],
    and the number of fraction bits; float64 arithmetic in PyTorch's order."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0                    # interp_size 2 * 0.5, widened
    taps = int(math.ceil(support)) * 2 + 1
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (np.arange(out_size) + 0.5)
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)    # C++ casts truncate
    xsize = np.clip(np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin, 0, taps)
    j = np.arange(taps)
    w = np.maximum(1.0 - np.abs(((j + xmin[:, None]) - center[:, None] + 0.5) * invscale), 0.0)
    w[j >= xsize[:, None]] = 0.0
    total = np.zeros(out_size)
    for k in range(taps):                                        # sequential sum, as in C++
        total += w[:, k]
    w = np.divide(w, total[:, None], out=np.zeros_like(w), where=total[:, None] != 0)
    wt_max = w.max()
    precision = 0
    while precision < 22 and int(0.5 + wt_max * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    w16 = np.trunc(0.5 + w * (1 << precision)).astype(np.int32)  # bilinear weights are >= 0
    return xmin, w16, precision


def _resize_axis(arr: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    in_size = arr.shape[axis]
    if in_size == out_size:
        return arr
    xmin, w16, precision = _aa_weights(in_size, out_size)
    src = np.moveaxis(arr, axis, 0)                           # uint8; products promote to int32
    acc = np.full((out_size,) + src.shape[1:], 1 << (precision - 1), np.int32)
    extra = (slice(None),) + (None,) * (src.ndim - 1)
    for k in range(w16.shape[1]):
        idx = np.minimum(xmin + k, in_size - 1)                 # taps past xsize weigh 0
        acc += w16[:, k][extra] * src[idx]
    out = np.clip(acc >> precision, 0, 255).astype(np.uint8)
    return np.moveaxis(out, 0, axis)


def _resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """[H, W, C] uint8 -> [height, width, C] uint8: horizontal pass first, then vertical, as
    PyTorch does, with a rounded uint8 image in between."""
    return _resize_axis(_resize_axis(arr, width, 1), height, 0)


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = np.asarray(x, np.float32).view(np.uint32)
    bits = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


def _normalise_table(cfg: Llama4ImageConfig) -> np.ndarray:
    """[3, 256] the value HF gives each uint8 level: every step is a bfloat16 op (compute in
    float32, round to bf16): x.to(bf16) * (1/255), then - mean, then / std, with mean and std
    themselves bf16 tensors."""
    levels = np.arange(256, dtype=np.float32)
    scaled = _bf16(levels * np.float32(1 / 255))
    mean = _bf16(np.array(cfg.mean, np.float32))[:, None]
    std = _bf16(np.array(cfg.std, np.float32))[:, None]
    return _bf16(_bf16(scaled[None] - mean) / std)


def preprocess(image, cfg: Llama4ImageConfig = Llama4ImageConfig()) -> tuple[np.ndarray, tuple[int, int]]:
    """(pixels [n_tiles (+1 global tile when n_tiles > 1), 3, tile, tile] float32 holding
    bfloat16 values, (rows, cols) of the tile grid), HF's pixel_values and aspect_ratios.
    Tiles are in row-major order; the global tile is last."""
    img = to_rgb(load_image(image))
    arr = np.asarray(img)                                      # [H, W, 3] uint8
    height, width = arr.shape[:2]
    _check_size(height, width)
    t = cfg.tile_size
    canvas_h, canvas_w = best_fit(height, width, cfg)
    new_h, new_w = fit_size(height, width, cfg)
    canvas = np.zeros((canvas_h, canvas_w, 3), np.uint8)       # HF pads uint8 with 0 (black)
    canvas[:new_h, :new_w] = _resize(arr, new_h, new_w)
    rows, cols = canvas_h // t, canvas_w // t
    tiles = canvas.reshape(rows, t, cols, t, 3).transpose(0, 2, 4, 1, 3).reshape(rows * cols, 3, t, t)
    if rows * cols > 1:
        whole = _resize(arr, t, t).transpose(2, 0, 1)[None]   # [1, 3, t, t]
        tiles = np.concatenate([tiles, whole])
    table = _normalise_table(cfg)
    pixels = np.stack([table[c][tiles[:, c]] for c in range(3)], axis=1)
    return pixels, (rows, cols)
