"""Gemma 2 text decoder: Gemma 3's graph (models/gemma3) without QK-norm, with Gemma 2's rope
bases (rope_base on global layers, rope_base_swa on sliding ones, no scaling) and its tanh cap
of the attention scores; tied in every Gemma 2 (a file with its own head is read too)."""
from __future__ import annotations

from ..gemma3.text import Gemma3Text
from .config import Gemma2Config


class Gemma2Text(Gemma3Text):
    config_class = Gemma2Config
    qk_norm = False

    def rope(self, il: int) -> tuple[int, float, float]:
        c = self.config
        return c.n_rot, c.rope_base if c.is_global(il) else c.rope_base_swa, 1.0

    def attn_softcap(self) -> float:
        return self.config.attn_softcap
