"""Qwen2.5-VL text: Hugging Face config + tensor names -> GGUF metadata + tensor names, and the
byte-level BPE vocabulary, in llama.cpp's convention for arch "qwen2vl" (the vision tower is
convert_mmproj.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import ConvertError, architecture, text_config, write_bpe_tokenizer
from ..hf_decoder import write_decoder_shape
from ..llama.convert import LAYER_NAMES, decoder_name, decoder_names

ARCH = "qwen2vl"
ARCHITECTURES = ("Qwen2_5_VLForConditionalGeneration",)

# Qwen2_5_VLTextConfig defaults (transformers 5.x), for fields a config leaves out.
_DEFAULTS = dict(vocab_size=152_064, hidden_size=8192, intermediate_size=29_568, num_hidden_layers=80,
                 num_attention_heads=64, max_position_embeddings=32_768, rms_norm_eps=1e-5,
                 rope_theta=1_000_000.0)
_MROPE_DEFAULT = (16, 24, 24)   # what Qwen2_5_VLRotaryEmbedding falls back to

_BIASED = ("attn_q", "attn_k", "attn_v")   # Qwen2 attention: q/k/v have biases, o has none
# transformers 5 keeps the text model under model.language_model.; Hub checkpoints (and
# transformers 5 save_pretrained, which writes the legacy names) under model. Longest first.
_TEXT_PREFIXES = ("model.language_model.", "model.")
_SKIP_PREFIXES = ("model.visual.", "visual.")   # the vision tower goes to the mmproj file


@dataclass(frozen=True)
class Qwen25VLHparams:
    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ctx: int
    norm_eps: float
    rope_base: float
    rope_sections: tuple[int, int, int, int]   # M-RoPE pairs per axis (t, h, w, 0)
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Qwen25VLHparams":
        architecture(config, ARCHITECTURES, where, "Qwen2.5-VL")
        hp = {**_DEFAULTS, **text_config(config)}
        if hp.get("use_sliding_window") or "sliding_attention" in (hp.get("layer_types") or ()):
            raise ConvertError(f"{where}: sliding-window attention is not supported (arch qwen2vl has none)")
        n_embd, n_head = int(hp["hidden_size"]), int(hp["num_attention_heads"])
        if n_embd % n_head:
            raise ConvertError(f"{where}: hidden_size {n_embd} is not a multiple of "
                               f"num_attention_heads {n_head}")
        base, sections = _rope(hp, n_embd // n_head, where)
        # Qwen2_5_VLConfig ties when either level asks for it
        tied = bool(config.get("tie_word_embeddings")
                    or (config.get("text_config") or {}).get("tie_word_embeddings"))
        return cls(
            n_vocab=int(hp["vocab_size"]), n_embd=n_embd, n_ff=int(hp["intermediate_size"]),
            n_layer=int(hp["num_hidden_layers"]), n_head=n_head,
            n_head_kv=int(hp.get("num_key_value_heads") or n_head), n_ctx=int(hp["max_position_embeddings"]),
            norm_eps=float(hp["rms_norm_eps"]), rope_base=base, rope_sections=sections, tied=tied)


Hparams = Qwen25VLHparams   # the name store/convert.py looks up in every text module


def _rope(hp: dict, head_dim: int, where: str) -> tuple[float, tuple[int, int, int, int]]:
    """(theta, mrope_section padded to 4) from transformers 5 `rope_parameters` or the Hub's
    `rope_theta` + `rope_scaling` {"type": "mrope", "mrope_section": [...]}. As in transformers,
    rope_scaling replaces rope_parameters when both are given."""
    params = dict(hp.get("rope_scaling") or hp.get("rope_parameters") or {})
    base = float(params.get("rope_theta", hp["rope_theta"]))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ("default", "mrope"):
        raise ConvertError(f"{where}: rope type {kind!r} is not supported (Qwen2.5-VL uses default M-RoPE)")
    sections = [int(s) for s in params.get("mrope_section", _MROPE_DEFAULT)]
    if len(sections) > 4 or sum(sections) != head_dim // 2:
        raise ConvertError(f"{where}: mrope_section {sections} must have at most 4 entries summing to "
                           f"head_dim/2 = {head_dim // 2}")
    return base, tuple(sections + [0] * (4 - len(sections)))


def write_metadata(w, hp: Qwen25VLHparams) -> None:
    write_decoder_shape(w, hp)
    w.add_rope_dimension_sections(list(hp.rope_sections))


def gguf_name(hf_name: str, hp: Qwen25VLHparams) -> str | None:
    """GGUF tensor name for a HF tensor name: the text model's as in a Qwen2 checkpoint (llama's
    layout, q/k/v biases); None for tensors that are not part of the text GGUF (vision tower, a
    tied lm_head). Raises ValueError for unknown names."""
    if hf_name.startswith(_SKIP_PREFIXES):
        return None
    rest = next((hf_name[len(p):] for p in _TEXT_PREFIXES if hf_name.startswith(p)), None)
    if rest is None and hf_name != "lm_head.weight":
        raise ValueError(f"unexpected tensor {hf_name!r}")
    return decoder_name(hf_name if rest is None else "model." + rest, hp.tied, LAYER_NAMES, _BIASED)


def expected_names(hp: Qwen25VLHparams) -> set[str]:
    return decoder_names(hp.n_layer, hp.tied, LAYER_NAMES, _BIASED)


def fix_tensor(name: str, data: np.ndarray, n_vocab_real: int, hp=None) -> np.ndarray:
    """Qwen2's RMSNorm scales by w (not 1 + w) and the embedding keeps its padded rows (the
    vocabulary is padded to match): nothing to change."""
    return data


def write_tokenizer(w, hf_dir: Path, config: dict) -> int:
    """tokenizer.ggml.* (model "gpt2", pre "qwen2") and tokenizer.chat_template; returns the
    vocabulary size (config vocab_size, or more if the tokenizer has more)."""
    if not (hf_dir / "tokenizer.json").is_file():
        raise ConvertError(f"{hf_dir}: no tokenizer.json (Qwen2.5-VL needs its byte-level BPE tokenizer.json)")
    n_vocab = int(text_config(config).get("vocab_size", _DEFAULTS["vocab_size"]))
    return write_bpe_tokenizer(w, hf_dir, config, n_vocab, "qwen2")
