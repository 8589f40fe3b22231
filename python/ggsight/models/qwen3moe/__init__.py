"""Qwen3-MoE (Qwen3-30B-A3B style): Qwen3 attention, a sparse mixture of experts on every layer."""
from . import convert
from .config import Qwen3MoeConfig
from .text import Qwen3MoeText

GGUF_ARCHITECTURES = ("qwen3moe",)  # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = Qwen3MoeText
IMAGES = None       # text only
CONVERT = convert   # HF -> GGUF (text)
CONVERT_MMPROJ = None

__all__ = ["MODEL", "Qwen3MoeConfig", "Qwen3MoeText"]
