"""Mistral 3 text hyperparameters as llama.cpp's converter writes them (arch "mistral3": the
llama decoder under its own key prefix; older converters wrote Mistral Small 3.1 as "llama",
which models/llama reads)."""
from __future__ import annotations

from ...errors import UnsupportedError
from ..llama.config import LlamaConfig

ARCH = "mistral3"


def mistral3_config(gguf) -> LlamaConfig:
    """LlamaConfig from mistral3.* keys. Ministral 3's extras (attention temperature scaling,
    YaRN) are refused rather than run as plain Mistral."""
    if float(gguf.get(f"{ARCH}.attention.temperature_scale", 0.0) or 0.0) != 0.0:
        raise UnsupportedError(f"{gguf.path}: attention temperature scaling (Ministral 3) is not supported")
    return LlamaConfig.read(gguf, ARCH, rope_base=1_000_000_000.0, norm_eps=1e-5, sliding_window=0)
