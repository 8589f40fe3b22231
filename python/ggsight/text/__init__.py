"""Text: tokenizers built from GGUF vocabularies, chat templates, output parsing."""
from __future__ import annotations

__all__ = ["Tokenizer", "StreamDecoder"]


def __getattr__(name):  # `tokenizers` is imported only when a tokenizer is used
    if name in __all__:
        from . import tokenizer
        return getattr(tokenizer, name)
    raise AttributeError(f"module 'ggsight.text' has no attribute {name!r}")
