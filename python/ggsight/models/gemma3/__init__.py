"""Gemma 3: 5 sliding-window : 1 global text layers; SigLIP vision with an avg-pool projector."""
from . import convert, convert_mmproj
from .config import Gemma3Config
from .images import Gemma3Images
from .ollama import OLLAMA_TENSORS
from .text import Gemma3Text

GGUF_ARCHITECTURES = ("gemma3",)  # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = Gemma3Text
IMAGES = Gemma3Images  # the engine's image glue for this architecture (needs an mmproj)
PROJECTOR_TYPES = ("gemma3",)  # clip.projector_type of its mmproj files
CONVERT = convert                # HF -> GGUF (text)
CONVERT_MMPROJ = convert_mmproj  # HF -> mmproj GGUF

__all__ = ["OLLAMA_TENSORS", "Gemma3Config", "Gemma3Images", "Gemma3Text", "IMAGES", "MODEL"]
