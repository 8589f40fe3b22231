"""Qwen2 / Qwen2.5 text hyperparameters, read from GGUF (llama.cpp's arch "qwen2")."""
from __future__ import annotations

from dataclasses import dataclass

from ...nn import decoder_hparams
from ..llama.config import rope_freq_scale

ARCH = "qwen2"


@dataclass(frozen=True)
class Qwen2Config:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    n_ctx_train: int
    norm_eps: float
    rope_base: float
    rope_freq_scale: float     # 1 / linear scaling factor

    @classmethod
    def from_gguf(cls, gguf) -> "Qwen2Config":
        return cls(**decoder_hparams(gguf, ARCH, rope_base=10_000.0, norm_eps=1e-6),
                   rope_freq_scale=rope_freq_scale(gguf, ARCH))
