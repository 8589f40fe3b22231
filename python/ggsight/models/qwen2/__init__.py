"""Qwen2 / Qwen2.5 text (llama.cpp's arch "qwen2"): Llama's blocks with q/k/v biases, NeoX rope."""
from . import convert
from .config import Qwen2Config
from .text import Qwen2Text

GGUF_ARCHITECTURES = ("qwen2",)           # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = Qwen2Text
IMAGES = None                             # text only
CONVERT = convert                         # HF -> GGUF (text)
CONVERT_MMPROJ = None

__all__ = ["IMAGES", "MODEL", "Qwen2Config", "Qwen2Text"]
