"""Qwen3 text hyperparameters, read from GGUF (llama.cpp's arch "qwen3"; head_dim is 128 in
every size, whatever n_embd / n_head)."""
from __future__ import annotations

from dataclasses import dataclass

from ...nn import DecoderConfig

ARCH = "qwen3"


@dataclass(frozen=True)
class Qwen3Config(DecoderConfig):
    @classmethod
    def from_gguf(cls, gguf) -> "Qwen3Config":
        return cls.read(gguf, ARCH, rope_base=1_000_000.0, norm_eps=1e-6)
