"""Qwen3 text hyperparameters, read from GGUF (llama.cpp's arch "qwen3")."""
from __future__ import annotations

from dataclasses import dataclass

from ...nn import decoder_hparams
from ..llama.config import rope_freq_scale

ARCH = "qwen3"


@dataclass(frozen=True)
class Qwen3Config:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int              # attention.key_length: 128 in every size, whatever n_embd / n_head
    n_rot: int
    n_ctx_train: int
    norm_eps: float
    rope_base: float
    rope_freq_scale: float     # 1 / linear scaling factor

    @classmethod
    def from_gguf(cls, gguf) -> "Qwen3Config":
        return cls(**decoder_hparams(gguf, ARCH, rope_base=1_000_000.0, norm_eps=1e-6),
                   rope_freq_scale=rope_freq_scale(gguf, ARCH))
