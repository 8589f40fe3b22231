"""Qwen3 text decoder: Qwen2's, with per-head QK RMSNorm before the NeoX rope and no biases; a
tied head up to 4B."""
from __future__ import annotations

from ..qwen2.text import Qwen2Text
from .config import Qwen3Config


class Qwen3Text(Qwen2Text):
    config_class = Qwen3Config
    qk_norm = True
