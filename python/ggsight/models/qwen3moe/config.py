"""Qwen3-MoE text hyperparameters, read from GGUF (llama.cpp's arch "qwen3moe")."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...ggml import required
from ...nn import DecoderConfig

ARCH = "qwen3moe"


@dataclass(frozen=True)
class Qwen3MoeConfig(DecoderConfig):   # n_ff: unused by the experts unless their own width is missing
    n_expert: int
    n_expert_used: int
    n_ff_expert: int
    norm_topk: bool                 # the chosen experts' weights renormalised to sum to 1

    @classmethod
    def from_gguf(cls, gguf) -> "Qwen3MoeConfig":
        config = cls.read(
            gguf, ARCH, rope_base=1_000_000.0, norm_eps=1e-6, n_ctx=40960,
            n_expert=int(required(gguf, f"{ARCH}.expert_count")),
            n_expert_used=int(required(gguf, f"{ARCH}.expert_used_count")), n_ff_expert=0,
            # llama.cpp always renormalises for qwen3moe (Qwen3-30B-A3B and -235B-A22B set
            # norm_topk_prob); ggsight's converter writes the config's value
            norm_topk=bool(gguf.get(f"{ARCH}.expert_weights_norm", True)))
        # llama.cpp: without expert_feed_forward_length each expert is n_ff / n_expert_used wide
        width = gguf.get(f"{ARCH}.expert_feed_forward_length", config.n_ff // config.n_expert_used)
        return replace(config, n_ff_expert=int(width))
