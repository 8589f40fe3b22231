"""Image decoding and preprocessing: pure functions (Pillow + numpy in, numpy out)."""
from .image import MAX_PIXELS, ImageError, load_image, to_rgb

__all__ = ["ImageError", "MAX_PIXELS", "load_image", "to_rgb"]
