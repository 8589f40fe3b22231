"""Gemma 3 (text; vision arrives with the conformance harness)."""
from .config import Gemma3Config
from .text import Gemma3Text

MODEL = Gemma3Text

__all__ = ["Gemma3Config", "Gemma3Text", "MODEL"]
