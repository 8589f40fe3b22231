"""Llama 4 text hyperparameters, read from GGUF (llama.cpp's arch "llama4" + ggsight's keys)."""
from __future__ import annotations

from dataclasses import dataclass

from ...ggml import required

ARCH = "llama4"
# llama.cpp's files carry none of the chunk / NoPE / temperature keys and llama.cpp fills them
# in; these are the values of every released Llama 4 (Scout and Maverick)
_RELEASED_CHUNK, _RELEASED_FLOOR, _RELEASED_ATTN_SCALE, _RELEASED_NOPE_STEP = 8192, 8192, 0.1, 4


@dataclass(frozen=True)
class Llama4Config:
    n_layer: int
    n_embd: int
    n_ff: int                  # dense layers' MLP
    n_ff_expert: int
    n_expert: int
    n_expert_used: int
    moe_step: int              # every moe_step-th layer is a mixture of experts
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    norm_eps: float
    rope_base: float
    chunk: int                 # attention chunk of the RoPE layers; 0 = none (global)
    rope_layers: tuple         # per layer: True = RoPE + chunked, False = NoPE + global
    temperature_tuning: bool   # NoPE layers scale q by log1p(floor((p + 1) / floor_scale)) * attn_scale + 1
    floor_scale: float
    attn_scale: float
    qk_l2_norm: bool           # RoPE layers only, after the rotation

    @classmethod
    def from_gguf(cls, gguf) -> "Llama4Config":
        def key(name, default=None):
            return required(gguf, f"{ARCH}.{name}", default)
        n_layer, n_embd, n_head = int(key("block_count")), int(key("embedding_length")), int(key("attention.head_count"))
        head_dim = int(key("attention.key_length", n_embd // n_head))
        n_expert = int(key("expert_count"))
        rope_layers = gguf.get(f"{ARCH}.attention.rope_layers")
        chunk = gguf.get(f"{ARCH}.attention.chunk_size")
        if rope_layers is None:   # a llama.cpp file: its rules (sliding_window 0 = no chunking, all RoPE)
            plain = gguf.get(f"{ARCH}.attention.sliding_window") == 0
            rope_layers = [plain or (il + 1) % _RELEASED_NOPE_STEP != 0 for il in range(n_layer)]
            chunk = 0 if plain else _RELEASED_CHUNK
        return cls(
            n_layer=n_layer, n_embd=n_embd, n_ff=int(key("feed_forward_length")),
            n_ff_expert=int(key("expert_feed_forward_length")), n_expert=n_expert,
            n_expert_used=int(key("expert_used_count")), moe_step=int(key("interleave_moe_layer_step", 1)),
            n_head=n_head, n_head_kv=int(key("attention.head_count_kv", n_head)), head_dim=head_dim,
            n_rot=int(key("rope.dimension_count", head_dim)),
            norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_base=float(key("rope.freq_base", 500_000.0)), chunk=int(chunk or 0),
            rope_layers=tuple(bool(x) for x in rope_layers),
            temperature_tuning=bool(key("attention.temperature_tuning", True)),
            floor_scale=float(key("attention.floor_scale", _RELEASED_FLOOR)),
            attn_scale=float(key("attention.attn_scale", _RELEASED_ATTN_SCALE)),
            # llama.cpp: QK-norm on every size but the 128-expert one
            qk_l2_norm=bool(key("attention.qk_l2_norm", n_expert != 128)))

    def is_moe(self, layer: int) -> bool:
        return self.moe_step > 0 and (layer + 1) % self.moe_step == 0
