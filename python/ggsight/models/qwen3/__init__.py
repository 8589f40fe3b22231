"""Qwen3 text (llama.cpp's arch "qwen3"): Llama's blocks with per-head QK RMSNorm, NeoX rope."""
from . import convert
from .config import Qwen3Config
from .text import Qwen3Text

GGUF_ARCHITECTURES = ("qwen3",)           # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = Qwen3Text
IMAGES = None                             # text only
CONVERT = convert                         # HF -> GGUF (text)
CONVERT_MMPROJ = None

__all__ = ["IMAGES", "MODEL", "Qwen3Config", "Qwen3Text"]
