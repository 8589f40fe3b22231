"""Qwen2 / Qwen2.5 text: Hugging Face config + tensor names -> GGUF metadata + tensor names and
the byte-level BPE vocabulary, in llama.cpp's convention for arch "qwen2". Llama's tensor layout
with q/k/v biases; llama.cpp's qwen2 graph rotates halves (NeoX) as HF does, so nothing is
permuted and no value changes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import ConvertError, architecture, text_config, write_bpe_tokenizer
from ..hf_decoder import DecoderShape, decoder_shape, rope, write_decoder_shape
from ..llama.convert import LAYER_NAMES, decoder_name, decoder_names

ARCH = "qwen2"
ARCHITECTURES = ("Qwen2ForCausalLM",)

# Qwen2Config defaults (transformers 5.x), for fields a config.json leaves out
_DEFAULTS = dict(vocab_size=151_936, hidden_size=4096, intermediate_size=22_016, num_hidden_layers=32,
                 num_attention_heads=32, max_position_embeddings=32_768, rms_norm_eps=1e-6, rope_theta=10_000.0,
                 tie_word_embeddings=False)
_BIASED = ("attn_q", "attn_k", "attn_v")   # Qwen2 attention: q/k/v have biases, o has none


@dataclass(frozen=True)
class Qwen2Hparams(DecoderShape):
    rope_linear_factor: float   # 1.0 = none

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Qwen2Hparams":
        architecture(config, ARCHITECTURES, where, "Qwen2")
        hp = {**_DEFAULTS, **text_config(config)}
        if hp.get("use_sliding_window") and "sliding_attention" in (hp.get("layer_types") or ()):
            raise ConvertError(f"{where}: sliding-window attention is not supported (arch qwen2 has none)")
        n_embd, n_head = int(hp["hidden_size"]), int(hp["num_attention_heads"])
        head_dim = n_embd // n_head
        base, linear, _ = rope(hp, head_dim, where, kinds=("default", "linear"))
        return cls(**decoder_shape(hp, head_dim=head_dim, rope_base=base), rope_linear_factor=linear)


Hparams = Qwen2Hparams   # the name store/convert.py looks up in every text module


def write_metadata(w, hp) -> None:
    write_decoder_shape(w, hp)


def gguf_name(hf_name: str, hp: Qwen2Hparams) -> str | None:
    return decoder_name(hf_name, hp.tied, LAYER_NAMES, _BIASED)


def expected_names(hp: Qwen2Hparams) -> set[str]:
    return decoder_names(hp.n_layer, hp.tied, LAYER_NAMES, _BIASED)


def fix_tensor(name: str, data: np.ndarray, n_vocab_real: int, hp=None) -> np.ndarray:
    """HF's RMSNorm scales by w and the embedding keeps its padded rows: nothing to change."""
    return data


def write_tokenizer(w, hf_dir: Path, config: dict) -> int:
    """tokenizer.ggml.* (model "gpt2", pre "qwen2") and tokenizer.chat_template; returns the
    vocabulary size (config vocab_size, or more if the tokenizer has more)."""
    if not (hf_dir / "tokenizer.json").is_file():
        raise ConvertError(f"{hf_dir}: no tokenizer.json (Qwen needs its byte-level BPE tokenizer.json)")
    n_vocab = int(text_config(config).get("vocab_size") or _DEFAULTS["vocab_size"])
    return write_bpe_tokenizer(w, hf_dir, config, n_vocab, "qwen2")
