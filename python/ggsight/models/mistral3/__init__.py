"""Mistral Small 3.1 / Pixtral: a Mistral (llama-layout) text decoder, the Pixtral ViT (2D rope,
RMSNorm, gated MLP), Mistral 3's 2x2 patch merger and projector; rows of [IMG] ended by
[IMG_BREAK], the last by [IMG_END].

The text GGUF is arch "llama" (ggsight's converter, older llama.cpp converters: models/llama runs
it) or "mistral3" (llama.cpp's converter today: the same decoder, read here); the image glue is
chosen by the mmproj's clip.projector_type, whichever text architecture it pairs with."""
from . import convert, convert_mmproj
from .images import Mistral3Images
from .text import Mistral3Text
from .vision import PROJECTOR_TYPE

GGUF_ARCHITECTURES = ("mistral3",)        # llama.cpp's converter's text arch ("llama" is models/llama's)
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = Mistral3Text
IMAGES = Mistral3Images
PROJECTOR_TYPES = (PROJECTOR_TYPE,)       # clip.projector_type of its mmproj files
CONVERT = convert                         # HF -> GGUF (text, arch "llama")
CONVERT_MMPROJ = convert_mmproj           # HF -> mmproj GGUF

__all__ = ["IMAGES", "MODEL", "Mistral3Images", "Mistral3Text"]
