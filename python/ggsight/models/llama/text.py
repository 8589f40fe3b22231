"""Llama text decoder (Llama 2 / 3.x, Mistral): pre-norm GQA attention with adjacent-pair rope
(llama3 frequency factors when the file has rope_freqs.weight), SwiGLU, an optional sliding
window on every layer; tied in Llama 3.2 1B / 3B. Mistral 3 and LLaVA put image rows into it."""
from __future__ import annotations

from ...cache import FULL, CacheKind, window_kind
from ...nn import DenseDecoder
from ...nn.decoder import ROPE_NORMAL
from .config import LlamaConfig


class LlamaText(DenseDecoder):
    config_class = LlamaConfig
    rope_mode = ROPE_NORMAL
    rope_freq_factors = True

    def cache_kinds(self) -> list[CacheKind]:
        c = self.config
        return [window_kind(c.sliding_window) if c.sliding_window else FULL] * c.n_layer
