"""Granite 3.x text (llama.cpp's arch "granite"): Llama's blocks with IBM's embedding, residual,
attention and logit multipliers (the decoder of Granite Vision too)."""
from . import convert
from .config import GraniteConfig
from .text import GraniteText

GGUF_ARCHITECTURES = ("granite",)         # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = GraniteText
IMAGES = None                             # text only (Granite Vision's glue is another folder's)
CONVERT = convert                         # HF -> GGUF (text)
CONVERT_MMPROJ = None

__all__ = ["GraniteConfig", "GraniteText", "IMAGES", "MODEL"]
