"""Qwen3 text: Hugging Face config + tensor names -> GGUF metadata + tensor names and the
byte-level BPE vocabulary, in llama.cpp's convention for arch "qwen3". Llama's tensor layout plus
the per-head q_norm / k_norm; NeoX rope as HF, so nothing is permuted and no value changes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..hf_common import ConvertError, architecture, text_config
from ..hf_decoder import DecoderShape, decoder_shape, rope, write_decoder_shape
from ..llama.convert import LAYER_NAMES, decoder_name, decoder_names
# Qwen2's byte-level BPE vocabulary (pre "qwen2": Qwen3 keeps its regex); store/convert.py calls it
from ..qwen2.convert import write_tokenizer  # noqa: F401

ARCH = "qwen3"
ARCHITECTURES = ("Qwen3ForCausalLM",)

# Qwen3Config defaults (transformers 5.x), for fields a config.json leaves out
_DEFAULTS = dict(vocab_size=151_936, hidden_size=4096, intermediate_size=22_016, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, head_dim=128, max_position_embeddings=32_768,
                 rms_norm_eps=1e-6, rope_theta=10_000.0, tie_word_embeddings=False, attention_bias=False)
_LAYER_NAMES = {**LAYER_NAMES, "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
_BIASED = ("attn_q", "attn_k", "attn_v", "attn_output")   # only with attention_bias


@dataclass(frozen=True)
class Qwen3Hparams(DecoderShape):
    rope_linear_factor: float   # 1.0 = none
    attention_bias: bool

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Qwen3Hparams":
        architecture(config, ARCHITECTURES, where, "Qwen3")
        hp = {**_DEFAULTS, **text_config(config)}
        if hp.get("use_sliding_window") and "sliding_attention" in (hp.get("layer_types") or ()):
            raise ConvertError(f"{where}: sliding-window attention is not supported (arch qwen3 has none)")
        n_embd, n_head = int(hp["hidden_size"]), int(hp["num_attention_heads"])
        head_dim = int(hp["head_dim"] or n_embd // n_head)
        base, linear, _ = rope(hp, head_dim, where, kinds=("default", "linear"))
        return cls(**decoder_shape(hp, head_dim=head_dim, rope_base=base), rope_linear_factor=linear,
                   attention_bias=bool(hp["attention_bias"]))


Hparams = Qwen3Hparams   # the name store/convert.py looks up in every text module


def write_metadata(w, hp) -> None:
    write_decoder_shape(w, hp)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)


def gguf_name(hf_name: str, hp: Qwen3Hparams) -> str | None:
    return decoder_name(hf_name, hp.tied, _LAYER_NAMES, _BIASED if hp.attention_bias else ())


def expected_names(hp: Qwen3Hparams) -> set[str]:
    return decoder_names(hp.n_layer, hp.tied, _LAYER_NAMES, _BIASED if hp.attention_bias else ())


def fix_tensor(name: str, data: np.ndarray, n_vocab_real: int, hp=None) -> np.ndarray:
    """HF's RMSNorms (QK-norms included) scale by w: nothing to change."""
    return data
