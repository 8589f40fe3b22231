"""Gemma 3 (text; vision arrives with the conformance harness)."""
from .config import Gemma3Config
from .images import Gemma3Images
from .text import Gemma3Text

MODEL = Gemma3Text
IMAGES = Gemma3Images  # the engine's image glue for this architecture (needs an mmproj)

__all__ = ["Gemma3Config", "Gemma3Images", "Gemma3Text", "IMAGES", "MODEL"]
