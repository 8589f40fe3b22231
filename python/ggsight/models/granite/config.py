"""Granite (3.x) text hyperparameters, read from GGUF (llama.cpp's arch "granite")."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...ggml import required
from ...nn import DecoderConfig

ARCH = "granite"


@dataclass(frozen=True)
class GraniteConfig(DecoderConfig):
    embedding_scale: float     # HF's embedding_multiplier: multiplies the token embeddings
    residual_scale: float      # residual_multiplier: multiplies each block's output before its residual add
    attention_scale: float     # attention_multiplier: replaces 1 / sqrt(head_dim)
    logit_scale: float         # logits_scaling: divides the logits

    @classmethod
    def from_gguf(cls, gguf) -> "GraniteConfig":
        # llama.cpp: logit_scale is required, the others optional with 0 meaning "none"
        def scale(name, none):
            return float(gguf.get(f"{ARCH}.{name}", 0.0) or 0.0) or none
        config = cls.read(gguf, ARCH, rope_base=10_000.0, norm_eps=1e-5,
                          embedding_scale=scale("embedding_scale", 1.0), residual_scale=scale("residual_scale", 1.0),
                          attention_scale=0.0, logit_scale=float(required(gguf, f"{ARCH}.logit_scale")))
        # without the key, the usual 1 / sqrt(head_dim) of the head_dim just read
        return replace(config, attention_scale=scale("attention.scale", config.head_dim ** -0.5))
