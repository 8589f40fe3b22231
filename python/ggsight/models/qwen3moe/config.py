"""Qwen3-MoE text hyperparameters, read from GGUF (llama.cpp's arch "qwen3moe")."""
from __future__ import annotations

from dataclasses import dataclass

from ...ggml import required
from ...nn import decoder_hparams
from ..llama.config import rope_freq_scale

ARCH = "qwen3moe"


@dataclass(frozen=True)
class Qwen3MoeConfig:
    n_layer: int
    n_embd: int
    n_ff: int                       # feed_forward_length: unused by the experts unless their own width is missing
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    n_ctx_train: int
    norm_eps: float
    rope_base: float
    rope_freq_scale: float          # 1 / linear scaling factor (YaRN refused, not run as plain rope)
    n_expert: int
    n_expert_used: int
    n_ff_expert: int
    norm_topk: bool                 # the chosen experts' weights renormalised to sum to 1

    @classmethod
    def from_gguf(cls, gguf) -> "Qwen3MoeConfig":
        shape = decoder_hparams(gguf, ARCH, rope_base=1_000_000.0, norm_eps=1e-6, n_ctx=40960)
        n_expert_used = int(required(gguf, f"{ARCH}.expert_used_count"))
        # llama.cpp: without expert_feed_forward_length each expert is n_ff / n_expert_used wide
        n_ff_expert = gguf.get(f"{ARCH}.expert_feed_forward_length", shape["n_ff"] // n_expert_used)
        return cls(
            **shape, rope_freq_scale=rope_freq_scale(gguf, ARCH), n_expert=int(required(gguf, f"{ARCH}.expert_count")), n_expert_used=n_expert_used,
            n_ff_expert=int(n_ff_expert),
            # llama.cpp always renormalises for qwen3moe (Qwen3-30B-A3B and -235B-A22B set
            # norm_topk_prob); ggsight's converter writes the config's value
            norm_topk=bool(gguf.get(f"{ARCH}.expert_weights_norm", True)))
