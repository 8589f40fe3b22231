"""Qwen2 / Qwen2.5 text decoder: Llama's blocks with q/k/v biases (read from the file) and NeoX
(half-split) rope, a tied head up to 3B."""
from __future__ import annotations

from ...nn import DenseDecoder
from ...nn.decoder import ROPE_NEOX
from .config import Qwen2Config


class Qwen2Text(DenseDecoder):
    config_class = Qwen2Config
    rope_mode = ROPE_NEOX
