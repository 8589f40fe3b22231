"""Qwen2.5-VL text hyperparameters, read from GGUF (llama.cpp's arch "qwen2vl")."""
from __future__ import annotations

from dataclasses import dataclass

from ...ggml import required

ARCH = "qwen2vl"


@dataclass(frozen=True)
class QwenVLConfig:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx_train: int
    norm_eps: float
    rope_base: float
    rope_sections: tuple   # M-RoPE: rotary pairs driven by the (t, h, w, extra) positions

    @classmethod
    def from_gguf(cls, gguf) -> "QwenVLConfig":
        def key(name, default=None):
            return required(gguf, f"{ARCH}.{name}", default)
        n_embd, n_head = int(key("embedding_length")), int(key("attention.head_count"))
        head_dim = int(gguf.get(f"{ARCH}.attention.key_length", n_embd // n_head))
        sections = tuple(int(s) for s in key("rope.dimension_sections"))
        sections = (sections + (0, 0, 0, 0))[:4]
        if sum(sections) != head_dim // 2:
            raise ValueError(f"{gguf.path}: rope.dimension_sections {list(sections)} must sum to half the head "
                             f"dimension ({head_dim // 2})")
        return cls(
            n_layer=int(key("block_count")), n_embd=n_embd, n_ff=int(key("feed_forward_length")), n_head=n_head,
            n_head_kv=int(key("attention.head_count_kv", n_head)), head_dim=head_dim,
            n_ctx_train=int(key("context_length", 32768)),
            norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-6)),
            rope_base=float(key("rope.freq_base", 1_000_000.0)), rope_sections=sections)
