"""Gemma 2 text hyperparameters, read from GGUF (llama.cpp's arch "gemma2")."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...nn import decoder_hparams

ARCH = "gemma2"
# llama.cpp's defaults where its files leave a key out (llama-hparams.h, models/gemma2.cpp)
_ATTN_SOFTCAP, _FINAL_SOFTCAP, _WINDOW, _SWA_PATTERN, _ROPE_BASE = 50.0, 30.0, 4096, 2, 10_000.0
_LAYERS_27B = 46


@dataclass(frozen=True)
class Gemma2Config:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int                      # rope.dimension_count: the head dim in every Gemma 2
    n_ctx_train: int
    norm_eps: float
    rope_base: float                # global layers
    rope_base_swa: float            # sliding-window layers (the same in every Gemma 2)
    sliding_window: int
    swa_pattern: int                # layer il is sliding-window unless il % swa_pattern == swa_pattern - 1
    attn_scale: float               # multiplies q (query_pre_attn_scalar ** -0.5)
    attn_softcap: float             # tanh cap of the attention scores; 0 = none
    final_logit_softcap: float      # 0 = none

    @classmethod
    def from_gguf(cls, gguf) -> "Gemma2Config":
        def key(name, default=None):
            return gguf.get(f"{ARCH}.{name}", default)
        hp = decoder_hparams(gguf, ARCH, rope_base=_ROPE_BASE, norm_eps=1e-6, n_ctx=8192)
        # llama.cpp's files carry no query_pre_attn_scalar and llama.cpp derives it: n_embd / n_head
        # for the 27B model (46 layers; 144, its head dim is 128), the head dim for 2B and 9B.
        # ggsight's converter writes the config's value.
        pre_attn = key("attention.query_pre_attn_scalar")
        if pre_attn is None:
            pre_attn = hp["n_embd"] // hp["n_head"] if hp["n_layer"] == _LAYERS_27B else hp["head_dim"]
        return cls(
            **hp,
            rope_base_swa=float(key("rope.freq_base_swa", hp["rope_base"])),
            sliding_window=int(key("attention.sliding_window", _WINDOW)),
            swa_pattern=int(key("attention.sliding_window_pattern", _SWA_PATTERN)),
            attn_scale=1.0 / math.sqrt(float(pre_attn)),
            attn_softcap=float(key("attn_logit_softcapping", _ATTN_SOFTCAP) or 0.0),
            final_logit_softcap=float(key("final_logit_softcapping", _FINAL_SOFTCAP) or 0.0),
        )

    def is_global(self, layer: int) -> bool:
        """HF's layer_types: sliding, full, sliding, full ... (llama.cpp's pattern of 2)."""
        return layer % self.swa_pattern == self.swa_pattern - 1
