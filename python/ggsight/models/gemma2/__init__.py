"""Gemma 2: sliding-window and global text layers alternating, attention and final logit softcaps."""
from . import convert
from .config import Gemma2Config
from .text import Gemma2Text

GGUF_ARCHITECTURES = ("gemma2",)  # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = Gemma2Text
IMAGES = None       # text only
CONVERT = convert   # HF -> GGUF (text)
CONVERT_MMPROJ = None

__all__ = ["Gemma2Config", "Gemma2Text", "MODEL"]
