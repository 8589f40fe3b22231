"""Llama hyperparameters, read from GGUF (llama.cpp's arch "llama": Llama 2 / 3.x, Mistral 7B /
Nemo / Small text)."""
from __future__ import annotations

from dataclasses import dataclass

from ...nn import DecoderConfig

ARCH = "llama"


@dataclass(frozen=True)
class LlamaConfig(DecoderConfig):
    sliding_window: int        # 0 = none; Mistral 7B v0.1: every layer sees the last 4096 positions

    @classmethod
    def from_gguf(cls, gguf) -> "LlamaConfig":
        # llama.cpp writes no sliding window for Mistral (its "llama" graph has none); ggsight's
        # converter writes the standard key where config.json sets one, and a file with it runs
        # as transformers does
        return cls.read(gguf, ARCH, rope_base=10_000.0, norm_eps=1e-5,
                        sliding_window=int(gguf.get(f"{ARCH}.attention.sliding_window", 0) or 0))
