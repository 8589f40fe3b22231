"""Granite (3.x) text hyperparameters, read from GGUF (llama.cpp's arch "granite")."""
from __future__ import annotations

from dataclasses import dataclass

from ...ggml import required
from ...nn import decoder_hparams
from ..llama.config import rope_freq_scale

ARCH = "granite"


@dataclass(frozen=True)
class GraniteConfig:
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
    embedding_scale: float     # HF's embedding_multiplier: multiplies the token embeddings
    residual_scale: float      # residual_multiplier: multiplies each block's output before its residual add
    attention_scale: float     # attention_multiplier: replaces 1 / sqrt(head_dim)
    logit_scale: float         # logits_scaling: divides the logits

    @classmethod
    def from_gguf(cls, gguf) -> "GraniteConfig":
        hp = decoder_hparams(gguf, ARCH, rope_base=10_000.0, norm_eps=1e-5)
        # llama.cpp: logit_scale is required, the others optional with 0 meaning "none"
        def scale(name, none):
            return float(gguf.get(f"{ARCH}.{name}", 0.0) or 0.0) or none
        return cls(**hp, rope_freq_scale=rope_freq_scale(gguf, ARCH),
                   embedding_scale=scale("embedding_scale", 1.0), residual_scale=scale("residual_scale", 1.0),
                   attention_scale=scale("attention.scale", hp["head_dim"] ** -0.5),
                   logit_scale=float(required(gguf, f"{ARCH}.logit_scale")))
