"""Llama 4: mixture-of-experts text with chunked attention and NoPE layers; tiled vision."""
from . import convert, convert_mmproj
from .config import Llama4Config
from .images import Llama4Images
from .text import Llama4Text

GGUF_ARCHITECTURES = ("llama4",)  # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = Llama4Text
IMAGES = Llama4Images
PROJECTOR_TYPES = (convert_mmproj.PROJECTOR_TYPE,)  # clip.projector_type of its mmproj files
CONVERT = convert                # HF -> GGUF (text)
CONVERT_MMPROJ = convert_mmproj  # HF -> mmproj GGUF

__all__ = ["IMAGES", "Llama4Config", "Llama4Images", "Llama4Text", "MODEL"]
