"""Llama hyperparameters, read from GGUF (llama.cpp's arch "llama": Llama 2 / 3.x, Mistral 7B /
Nemo / Small text)."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UnsupportedError
from ...nn import decoder_hparams

ARCH = "llama"


def rope_freq_scale(gguf, arch: str) -> float:
    """1 / the linear rope scaling factor (1 when the file asks for none). llama3 scaling needs
    no key: its divisors are the rope_freqs.weight tensor. YaRN and LongRoPE are refused rather
    than run as plain rope."""
    kind = gguf.get(f"{arch}.rope.scaling.type", "none")
    factor = float(gguf.get(f"{arch}.rope.scaling.factor", 0.0) or 0.0)
    if kind in ("none", "") or (kind == "linear" and factor in (0.0, 1.0)):
        return 1.0
    if kind == "linear":
        return 1.0 / factor
    raise UnsupportedError(f"{gguf.path}: rope scaling {kind!r} is not supported (linear or llama3 are)")


@dataclass(frozen=True)
class LlamaConfig:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    n_ctx_train: int
    norm_eps: float
    rope_base: float
    rope_freq_scale: float     # 1 / linear scaling factor
    sliding_window: int        # 0 = none; Mistral 7B v0.1: every layer sees the last 4096 positions

    @classmethod
    def from_gguf(cls, gguf) -> "LlamaConfig":
        # llama.cpp writes no sliding window for Mistral (its "llama" graph has none); ggsight's
        # converter writes the standard key where config.json sets one, and a file with it runs
        # as transformers does
        return cls(**decoder_hparams(gguf, ARCH, rope_base=10_000.0, norm_eps=1e-5),
                   rope_freq_scale=rope_freq_scale(gguf, ARCH),
                   sliding_window=int(gguf.get(f"{ARCH}.attention.sliding_window", 0) or 0))
