"""Gemma 3 text hyperparameters, read from GGUF."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...ggml import required

ARCH = "gemma3"


@dataclass(frozen=True)
class Gemma3Config:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx_train: int
    norm_eps: float
    rope_base_global: float
    rope_base_local: float
    rope_freq_scale: float          # 1 / linear scaling factor, global layers only
    sliding_window: int
    swa_pattern: int                # every swa_pattern-th layer is global ...
    attn_scale: float               # multiplies q (query_pre_attn_scalar ** -0.5)
    final_logit_softcap: float      # 0 = none
    local_layers: tuple = ()        # per layer, True = sliding window (Ollama's files list them)

    @classmethod
    def from_gguf(cls, gguf) -> "Gemma3Config":
        def key(name, default=None):
            return gguf.get(f"{ARCH}.{name}", default)

        def need(name):  # no default: a GGUFError naming the file and the key
            return required(gguf, f"{ARCH}.{name}")
        n_embd = int(need("embedding_length"))
        n_head = int(need("attention.head_count"))
        head_dim = int(key("attention.key_length", n_embd // n_head))
        n_layer = int(need("block_count"))
        factor = float(key("rope.scaling.factor", 1.0) or 1.0)
        # Known data fix: Ollama's files leave out the linear rope scaling (factor 8) that
        # the 4B, 12B and 27B checkpoints use on global layers.
        if key("rope.scaling.factor") is None and key("vision.block_count") is not None and n_layer in (34, 48, 62):
            factor = 8.0
        # Known data fix (as llama.cpp): GGUFs carry no query_pre_attn_scalar; the 27B model
        # uses n_embd / n_head (168), every other size the head dim.
        pre_attn = key("attention.query_pre_attn_scalar")
        if pre_attn is None:
            pre_attn = n_embd // n_head if n_layer == 62 else head_dim
        return cls(
            n_layer=n_layer,
            n_embd=n_embd,
            n_ff=int(need("feed_forward_length")),
            n_head=n_head,
            n_head_kv=int(key("attention.head_count_kv", n_head)),
            head_dim=head_dim,
            n_ctx_train=int(key("context_length", 131072)),
            norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-6)),
            rope_base_global=float(key("rope.freq_base", 1_000_000.0)),
            # HF's rope_local_base_freq; not in llama.cpp's GGUF keys, 10k in every Gemma 3.
            rope_base_local=float(key("rope.freq_base_swa", key("rope.local.freq_base", 10_000.0))),
            rope_freq_scale=1.0 / factor,  # linear scaling (4B+: factor 8), global layers only
            sliding_window=int(key("attention.sliding_window", 4096)),
            # llama.cpp-style files: an int (or nothing: 6); Ollama's: one bool per layer
            swa_pattern=pattern if isinstance(pattern := key("attention.sliding_window_pattern", 6), int) else 0,
            local_layers=() if isinstance(pattern, int) else tuple(bool(x) for x in pattern),
            attn_scale=1.0 / math.sqrt(float(pre_attn)),
            final_logit_softcap=float(key("final_logit_softcapping", 0.0) or 0.0),
        )

    def is_global(self, layer: int) -> bool:
        if self.local_layers:
            return not self.local_layers[layer]
        return (layer + 1) % self.swa_pattern == 0
