"""Llama 4: mixture-of-experts text with chunked attention and NoPE layers; tiled vision."""
from .config import Llama4Config
from .images import Llama4Images
from .text import Llama4Text

MODEL = Llama4Text
IMAGES = Llama4Images

__all__ = ["IMAGES", "Llama4Config", "Llama4Images", "Llama4Text", "MODEL"]
