"""Qwen2 / Qwen2.5 text hyperparameters, read from GGUF (llama.cpp's arch "qwen2")."""
from __future__ import annotations

from dataclasses import dataclass

from ...nn import DecoderConfig

ARCH = "qwen2"


@dataclass(frozen=True)
class Qwen2Config(DecoderConfig):
    @classmethod
    def from_gguf(cls, gguf) -> "Qwen2Config":
        return cls.read(gguf, ARCH, rope_base=10_000.0, norm_eps=1e-6)
