"""Llama / Mistral text: Hugging Face config + tensor names -> GGUF metadata + tensor names and
the vocabulary, in llama.cpp's convention for arch "llama".

One value change, llama.cpp's: HF rotates the two halves of each head (rotate_half), llama.cpp's
"llama" graph rotates adjacent pairs, so the rows of q_proj and k_proj (and their biases) are
permuted within each head: row 2i <- i, row 2i + 1 <- i + head_dim / 2. llama3 rope scaling
becomes the rope_freqs.weight tensor (one divisor per rotated pair), linear scaling the
rope.scaling.* keys. Mistral's sliding window goes to llama.attention.sliding_window (llama.cpp
writes none, and its "llama" graph has none)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import (ConvertError, architecture, read_json, spm_vocab_from_model,
                         spm_vocab_from_tokenizer_json, text_config, write_bpe_tokenizer, write_spm_tokenizer)
from ..hf_decoder import DecoderShape, decoder_shape, rope, write_decoder_shape

ARCH = "llama"
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")

# transformers 5.x config defaults, for fields a config.json leaves out
_DEFAULTS = {
    "LlamaForCausalLM": dict(vocab_size=32_000, hidden_size=4096, intermediate_size=11_008, num_hidden_layers=32,
                             num_attention_heads=32, max_position_embeddings=2048, rms_norm_eps=1e-6,
                             rope_theta=10_000.0, sliding_window=None, tie_word_embeddings=False),
    "MistralForCausalLM": dict(vocab_size=32_000, hidden_size=4096, intermediate_size=14_336, num_hidden_layers=32,
                               num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096 * 32,
                               rms_norm_eps=1e-6, rope_theta=10_000.0, sliding_window=4096,
                               tie_word_embeddings=False),
}

# HF module path inside a decoder layer -> GGUF tensor name inside blk.N
LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_ATTN_BIASED, _MLP_BIASED = ("attn_q", "attn_k", "attn_v", "attn_output"), ("ffn_gate", "ffn_up", "ffn_down")
_LAYER_RE = re.compile(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)$")

@dataclass(frozen=True)
class LlamaHparams(DecoderShape):
    rope_linear_factor: float                 # 1.0 = none
    rope_factors: tuple[float, ...] | None    # llama3 scaling: theta divisors, head_dim / 2
    sliding_window: int                       # 0 = none
    attention_bias: bool
    mlp_bias: bool

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "LlamaHparams":
        arch = architecture(config, ARCHITECTURES, where, "Llama")
        hp = {**_DEFAULTS[arch], **text_config(config)}
        if hp.get("hidden_act", "silu") != "silu":
            raise ConvertError(f"{where}: hidden_act {hp['hidden_act']!r} is not supported (silu)")
        n_embd, n_head = int(hp["hidden_size"]), int(hp["num_attention_heads"])
        head_dim = int(hp.get("head_dim") or n_embd // n_head)
        base, linear, factors = rope(hp, head_dim, where)
        out = cls(
            **decoder_shape(hp, head_dim=head_dim, rope_base=base),
            rope_linear_factor=linear, rope_factors=factors, sliding_window=int(hp.get("sliding_window") or 0),
            attention_bias=bool(hp.get("attention_bias")), mlp_bias=bool(hp.get("mlp_bias")))
        return out


Hparams = LlamaHparams   # the name store/convert.py looks up in every text module


def write_metadata(w, hp: LlamaHparams) -> None:
    write_decoder_shape(w, hp)
    w.add_vocab_size(hp.n_vocab)
    w.add_rope_dimension_count(hp.head_dim)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    if hp.sliding_window:
        w.add_sliding_window(hp.sliding_window)


def decoder_name(hf_name: str, tied: bool, layer_names: dict, biased: tuple) -> str | None:
    """GGUF tensor name of a Llama-layout HF tensor (model.embed_tokens, model.layers.N.<module>,
    model.norm, lm_head): `layer_names` maps the modules inside a layer, `biased` lists the GGUF
    names whose .bias the checkpoint may have. None for a tied lm_head (and HF's rotary buffers).
    Raises ValueError for unknown names. Shared by the families with this layout."""
    if hf_name == "lm_head.weight":
        return None if tied else "output.weight"
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None
    m = _LAYER_RE.match(hf_name)
    if m and m.group(2) in layer_names:
        name = layer_names[m.group(2)]
        if m.group(3) == "weight" or name in biased:
            return f"blk.{m.group(1)}.{name}.{m.group(3)}"
    raise ValueError(f"unexpected tensor {hf_name!r}")


def decoder_names(n_layer: int, tied: bool, layer_names: dict, biased: tuple) -> set[str]:
    """Every GGUF tensor name decoder_name gives a checkpoint of this layout (biases of `biased`)."""
    names = {"token_embd.weight", "output_norm.weight"}
    for i in range(n_layer):
        names |= {f"blk.{i}.{n}.weight" for n in layer_names.values()}
        names |= {f"blk.{i}.{n}.bias" for n in biased}
    if not tied:
        names.add("output.weight")
    return names


def _biased(hp: LlamaHparams) -> tuple[str, ...]:
    return (_ATTN_BIASED if hp.attention_bias else ()) + (_MLP_BIASED if hp.mlp_bias else ())


def gguf_name(hf_name: str, hp: LlamaHparams) -> str | None:
    return decoder_name(hf_name, hp.tied, LAYER_NAMES, _biased(hp))


def expected_names(hp: LlamaHparams) -> set[str]:
    return decoder_names(hp.n_layer, hp.tied, LAYER_NAMES, _biased(hp))


def permute_halves_to_pairs(data: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows (dim 0) of each head from HF's [first half, second half] order into interleaved
    pairs, which llama.cpp's normal rope rotates: what its converter's permute() does."""
    rows = data.shape[0]
    return (data.reshape(n_heads, 2, rows // n_heads // 2, *data.shape[1:]).swapaxes(1, 2)
            .reshape(data.shape))


def fix_tensor(name: str, data: np.ndarray, n_vocab_real: int, hp: LlamaHparams) -> np.ndarray:
    """q/k rows permuted for adjacent-pair rope (module docstring); HF's RMSNorm scales by w,
    as GGUF stores it: nothing else changes."""
    if ".attn_q." in name or ".attn_k." in name:
        return permute_halves_to_pairs(np.asarray(data), data.shape[0] // hp.head_dim)
    return data


def extra_tensors(hp: LlamaHparams) -> dict[str, np.ndarray]:
    """llama.cpp's rope_freqs.weight for llama3 rope scaling (no tensor otherwise)."""
    if hp.rope_factors is None:
        return {}
    return {"rope_freqs.weight": np.asarray(hp.rope_factors, dtype=np.float32)}


# ------------------------------------------------------------------------------- vocabulary

# tokenizer.json Split regexes -> llama.cpp's pre-tokenizer name (llama.cpp hashes the ids of a
# test text, which only a real vocabulary gives; the regex says the same)
_PRE_BY_REGEX = (
    (r"\p{N}{1,3}", "(?i:'s|'t|'re|'ve|'m|'ll|'d)", "llama-bpe"),   # Llama 3
    (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+", r"|\p{N}|", "tekken"),   # Mistral Nemo / Small
)


def bpe_pre_name(tj: dict, where: str) -> str:
    pre = tj.get("pre_tokenizer") or {}
    regexes = [p.get("pattern", {}).get("Regex", "") for p in pre.get("pretokenizers", [pre]) if p.get("type") == "Split"]
    for a, b, name in _PRE_BY_REGEX:
        if any(a in r and b in r for r in regexes):
            return name
    raise ConvertError(f"{where}: the tokenizer's pre-tokenizer {regexes or pre.get('type')!r} is not one "
                       f"ggsight knows for Llama (Llama 3's or Mistral's tekken)")


def write_tokenizer(w, hf_dir: Path, config: dict) -> int:
    """tokenizer.ggml.* and tokenizer.chat_template; returns the vocabulary size. A byte-level
    BPE tokenizer.json (Llama 3, Mistral's tekken) is written as model "gpt2"; tokenizer.model
    or a byte-fallback BPE tokenizer.json (Llama 2, Mistral 7B) as SentencePiece ("llama")."""
    n_vocab = int(text_config(config).get("vocab_size") or 0)
    tj_path = hf_dir / "tokenizer.json"
    tj = read_json(tj_path) if tj_path.is_file() else {}
    model = tj.get("model") or {}
    if tj and model.get("type") == "BPE" and not model.get("byte_fallback"):
        return write_bpe_tokenizer(w, hf_dir, config, n_vocab, bpe_pre_name(tj, str(tj_path)))
    # Llama 2 / Mistral 7B: SentencePiece pieces, scores and kinds from tokenizer.model (or from
    # HF's conversion of one, a tokenizer.json BPE with byte fallback), as llama.cpp writes them
    if (hf_dir / "tokenizer.model").is_file():
        return write_spm_tokenizer(w, hf_dir, config, spm_vocab_from_model(hf_dir / "tokenizer.model"))
    if tj:
        return write_spm_tokenizer(w, hf_dir, config, spm_vocab_from_tokenizer_json(tj_path))
    raise ConvertError(f"{hf_dir}: no tokenizer.json or tokenizer.model")
