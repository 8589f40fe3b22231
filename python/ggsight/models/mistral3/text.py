"""Mistral 3's text decoder is models/llama's; only the GGUF key prefix differs."""
from __future__ import annotations

from ..llama.text import LlamaText
from .config import mistral3_config


class Mistral3Text(LlamaText):
    def __init__(self, gguf, weights, config=None):
        super().__init__(gguf, weights, config or mistral3_config(gguf))
