"""Turn what users pass as an image (path, bytes, PIL image, numpy array) into RGB, safely."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import GGSightError

# Decompression bombs: refuse images above this many pixels before decoding them.
MAX_PIXELS = 16384 * 16384


class ImageError(GGSightError, ValueError):
    """An image could not be read or is not usable; the message says which and why."""


def load_image(source, *, max_pixels: int = MAX_PIXELS):
    """A PIL image (decoded, EXIF orientation NOT applied, as HF processors do) from a path,
    bytes, a PIL image or a numpy array (HWC uint8, or HW grey)."""
    from PIL import Image, UnidentifiedImageError
    if isinstance(source, Image.Image):
        return _nonempty(source, "the PIL image")
    if isinstance(source, np.ndarray):
        return _nonempty(_from_array(source), "the image array")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "image bytes"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        data, name = path.read_bytes(), str(path)
    else:
        raise ImageError(f"unsupported image type {type(source).__name__}: pass a path, bytes, "
                         "a PIL image or a numpy array")
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > max_pixels:
            raise ImageError(f"{name}: {img.width}x{img.height} is larger than {max_pixels} pixels")
        img.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as e:   # Pillow's own limit, checked in open() already
        raise ImageError(f"{name}: too many pixels to decode safely ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: not a readable image ({e})") from None
    return _nonempty(img, name)


def _nonempty(img, name: str):
    # a 0-pixel image would reach the resizers, which divide by its sides
    if img.width == 0 or img.height == 0:
        raise ImageError(f"{name} is empty ({img.width}x{img.height} pixels)")
    return img


def _from_array(arr: np.ndarray):
    from PIL import Image
    shape = arr.shape
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ImageError(f"an image array must be HxW or HxWxC with C in 1, 3, 4; got shape {shape}")
    if arr.size == 0:
        raise ImageError(f"the image array is empty (shape {shape})")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and 0.0 <= arr.min() and arr.max() <= 1.0:
            arr = np.round(arr * 255.0)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        return Image.fromarray(arr[..., 0], "L")
    return Image.fromarray(np.ascontiguousarray(arr), "RGB" if arr.shape[-1] == 3 else "RGBA")


def to_rgb(img):
    """RGB, with transparency composited onto white (as HF's convert_to_rgb does)."""
    from PIL import Image
    if "A" in img.getbands() or img.info.get("transparency") is not None:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")
