"""Gemma 3 text: Hugging Face config + tensor names -> GGUF metadata + tensor names (llama.cpp's
convention for arch "gemma3", plus the keys ggsight reads that llama.cpp hard-codes)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import (ConvertError, architecture, spm_vocab_from_model, spm_vocab_from_tokenizer_json,
                         write_spm_tokenizer)
from ..hf_decoder import DecoderShape, decoder_shape, write_decoder_shape

ARCH = "gemma3"
ARCHITECTURES = ("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")

# Gemma3TextConfig defaults (transformers 5.x): Hub configs of the multimodal models leave many
# text_config fields out and rely on these.
_DEFAULTS = dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                 num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                 max_position_embeddings=131_072, rms_norm_eps=1e-6, query_pre_attn_scalar=256,
                 sliding_window=4096, final_logit_softcapping=None, attn_logit_softcapping=None)
_ROPE_GLOBAL, _ROPE_LOCAL = 1_000_000.0, 10_000.0

# HF module path inside a decoder layer -> GGUF tensor name inside blk.N
_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# Text weights sit under one of these prefixes: Gemma3ForCausalLM ("model."), the multimodal
# model as saved by transformers 5 ("model.language_model.") and as on the Hub
# ("language_model.model."). Longest first.
_TEXT_PREFIXES = ("model.language_model.", "language_model.model.", "language_model.", "model.")
# Not part of the text model (the vision tower + projector go to the mmproj file).
_SKIP_PREFIXES = ("vision_tower.", "model.vision_tower.", "multi_modal_projector.",
                  "model.multi_modal_projector.", "vision_model.")
_LAYER_RE = re.compile(r"layers\.(\d+)\.(.+)\.weight$")


@dataclass(frozen=True)
class Gemma3Hparams(DecoderShape):
    rope_base_swa: float        # sliding-window layers
    rope_linear_factor: float   # 1.0 = no scaling (global layers only)
    sliding_window: int
    swa_pattern: int            # every swa_pattern-th layer is global
    query_pre_attn_scalar: float
    final_logit_softcap: float | None

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Gemma3Hparams":
        arch = architecture(config, ARCHITECTURES, where, "Gemma 3")
        text = (config.get("text_config") or {}) if arch == "Gemma3ForConditionalGeneration" else config
        hp = {**_DEFAULTS, **text}
        if hp.get("attn_logit_softcapping") is not None:
            raise ValueError(f"{where}: attn_logit_softcapping is not supported (Gemma 3 has none)")
        if hp.get("use_bidirectional_attention"):
            raise ValueError(f"{where}: bidirectional attention (EmbeddingGemma) is not supported")
        n_layer = int(hp["num_hidden_layers"])
        base, base_swa, factor = _rope(hp, where)
        tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", True))
        return cls(
            **decoder_shape(hp, head_dim=int(hp["head_dim"]), rope_base=base, tied=bool(tied)), rope_base_swa=base_swa,
            rope_linear_factor=factor, sliding_window=int(hp["sliding_window"]),
            swa_pattern=_swa_pattern(hp, n_layer, where),
            query_pre_attn_scalar=float(hp["query_pre_attn_scalar"]),
            # transformers applies the softcap in Gemma3ForCausalLM only; its ConditionalGeneration
            # head ignores the text config's value (released checkpoints set none either way)
            final_logit_softcap=hp.get("final_logit_softcapping") if arch == "Gemma3ForCausalLM" else None)


Hparams = Gemma3Hparams   # the name store/convert.py looks up in every text module


def _rope(hp: dict, where: str) -> tuple[float, float, float]:
    """(global base, local base, linear factor) from either config layout:
    transformers 5 `rope_parameters` {full_attention: {...}, sliding_attention: {...}} or the
    older `rope_theta` + `rope_local_base_freq` + `rope_scaling`."""
    params = hp.get("rope_parameters") or {}
    full = dict(params.get("full_attention") or {})
    local = dict(params.get("sliding_attention") or {})
    if not full and params and "rope_theta" in params:   # a flat rope_parameters dict
        full = dict(params)
    if hp.get("rope_scaling"):
        full = {**hp["rope_scaling"], **full}
    base = float(full.get("rope_theta", hp.get("rope_theta", _ROPE_GLOBAL)))
    base_swa = float(local.get("rope_theta", hp.get("rope_local_base_freq", _ROPE_LOCAL)))
    kind = full.get("rope_type", full.get("type", "default"))
    if kind == "default":
        return base, base_swa, 1.0
    if kind == "linear":
        return base, base_swa, float(full["factor"])
    raise ValueError(f"{where}: rope type {kind!r} is not supported (Gemma 3 uses default or linear)")


def _swa_pattern(hp: dict, n_layer: int, where: str) -> int:
    """Every N-th layer global. From `layer_types` (checked to be periodic) or the older int."""
    types = hp.get("layer_types")
    if not types:
        return int(hp.get("sliding_window_pattern") or 6)
    if len(types) != n_layer:
        raise ValueError(f"{where}: layer_types has {len(types)} entries for {n_layer} layers")
    glob = [i for i, t in enumerate(types) if t == "full_attention"]
    if any(t not in ("full_attention", "sliding_attention") for t in types):
        raise ValueError(f"{where}: unknown layer type in layer_types {sorted(set(types))}")
    if not glob:   # all sliding: a pattern longer than the stack
        return n_layer + 1
    pattern = glob[0] + 1
    expected = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n_layer)]
    if list(types) != expected:
        raise ValueError(f"{where}: layer_types is not periodic (every N-th layer global), which "
                         f"the GGUF key gemma3.attention.sliding_window_pattern cannot express")
    return pattern


def write_metadata(w, hp: Gemma3Hparams) -> None:
    write_decoder_shape(w, hp)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    w.add_sliding_window(hp.sliding_window)
    if hp.final_logit_softcap:
        w.add_final_logit_softcapping(float(hp.final_logit_softcap))
    # Keys llama.cpp hard-codes for Gemma 3 and ggsight reads (models/gemma3/config.py).
    w.add_uint32(f"{ARCH}.attention.sliding_window_pattern", hp.swa_pattern)
    w.add_float32(f"{ARCH}.rope.freq_base_swa", hp.rope_base_swa)
    w.add_float32(f"{ARCH}.attention.query_pre_attn_scalar", hp.query_pre_attn_scalar)


def gguf_name(hf_name: str, hp: Gemma3Hparams) -> str | None:
    """GGUF tensor name for a HF tensor name; None for tensors that are not part of the text
    GGUF (vision tower, projector, a tied lm_head). Raises ValueError for unknown names."""
    if hf_name.startswith(_SKIP_PREFIXES):
        return None
    if hf_name in ("lm_head.weight", "language_model.lm_head.weight"):
        return None if hp.tied else "output.weight"
    for prefix in _TEXT_PREFIXES:
        if hf_name.startswith(prefix):
            rest = hf_name[len(prefix):]
            break
    else:
        raise ValueError(f"unexpected tensor {hf_name!r}")
    if rest == "embed_tokens.weight":
        return "token_embd.weight"
    if rest == "norm.weight":
        return "output_norm.weight"
    m = _LAYER_RE.match(rest)
    if m and m.group(2) in _LAYER_NAMES:
        return f"blk.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}.weight"
    raise ValueError(f"unexpected tensor {hf_name!r}")


def expected_names(hp: Gemma3Hparams) -> set[str]:
    names = {"token_embd.weight", "output_norm.weight"}
    names |= {f"blk.{i}.{n}.weight" for i in range(hp.n_layer) for n in _LAYER_NAMES.values()}
    if not hp.tied:
        names.add("output.weight")
    return names


def fix_tensor(name: str, data: np.ndarray, n_vocab_real: int, hp=None) -> np.ndarray:
    """Value changes llama.cpp's converter makes: Gemma3RMSNorm computes x * (1 + w), GGUF
    stores 1 + w (all norms, QK-norms included); the embedding loses rows past the tokenizer's
    vocabulary (262208 -> 262144 in real checkpoints)."""
    if name.endswith("norm.weight"):
        return data.astype(np.float32) + np.float32(1.0)
    if name in ("token_embd.weight", "output.weight") and 0 < n_vocab_real < data.shape[0]:
        return data[:n_vocab_real]
    return data


def write_tokenizer(w, hf_dir: Path, config: dict) -> int:
    """tokenizer.ggml.* (SentencePiece-style, from tokenizer.json or tokenizer.model; no space
    prefix, <end_of_turn> as the eot token) and tokenizer.chat_template; returns the vocabulary size."""
    if (hf_dir / "tokenizer.json").is_file():
        vocab = spm_vocab_from_tokenizer_json(hf_dir / "tokenizer.json")
    elif (hf_dir / "tokenizer.model").is_file():
        vocab = spm_vocab_from_model(hf_dir / "tokenizer.model")
    else:
        raise ConvertError(f"{hf_dir}: no tokenizer.json or tokenizer.model")
    return write_spm_tokenizer(w, hf_dir, config, vocab, space_prefix=False, extra_ids={"eot": "<end_of_turn>"})
