"""Granite (3.x) text: Hugging Face config + tensor names -> GGUF metadata + tensor names and the
byte-level BPE vocabulary, in llama.cpp's convention for arch "granite": Llama's layout and q/k
row permutation (see models/llama/convert.py), HF's multipliers as llama.cpp's keys
granite.embedding_scale, residual_scale, attention.scale and logit_scale."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..hf_common import ConvertError, architecture, text_config, write_bpe_tokenizer
from ..hf_decoder import DecoderShape, decoder_shape, rope, write_decoder_shape
from ..llama import convert as llama

ARCH = "granite"
ARCHITECTURES = ("GraniteForCausalLM",)

# GraniteConfig defaults (transformers 5.x), for fields a config.json leaves out
_DEFAULTS = dict(vocab_size=32_000, hidden_size=4096, intermediate_size=11_008, num_hidden_layers=32,
                 num_attention_heads=32, max_position_embeddings=2048, rms_norm_eps=1e-6, rope_theta=10_000.0,
                 tie_word_embeddings=False, embedding_multiplier=1.0, logits_scaling=1.0,
                 residual_multiplier=1.0, attention_multiplier=1.0, attention_bias=False, mlp_bias=False)


@dataclass(frozen=True)
class GraniteHparams(DecoderShape):
    rope_linear_factor: float
    rope_factors: tuple[float, ...] | None
    embedding_scale: float
    residual_scale: float
    attention_scale: float
    logit_scale: float
    attention_bias: bool
    mlp_bias: bool

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "GraniteHparams":
        architecture(config, ARCHITECTURES, where, "Granite")
        hp = {**_DEFAULTS, **text_config(config)}
        if hp.get("hidden_act", "silu") != "silu":
            raise ConvertError(f"{where}: hidden_act {hp['hidden_act']!r} is not supported (silu)")
        n_embd, n_head = int(hp["hidden_size"]), int(hp["num_attention_heads"])
        head_dim = n_embd // n_head   # GraniteAttention has no head_dim (llama.cpp ignores one too)
        base, linear, factors = rope(hp, head_dim, where)
        out = cls(
            **decoder_shape(hp, head_dim=head_dim, rope_base=base), rope_linear_factor=linear, rope_factors=factors,
            embedding_scale=float(hp["embedding_multiplier"]), residual_scale=float(hp["residual_multiplier"]),
            attention_scale=float(hp["attention_multiplier"]), logit_scale=float(hp["logits_scaling"]),
            attention_bias=bool(hp["attention_bias"]), mlp_bias=bool(hp["mlp_bias"]))
        return out


Hparams = GraniteHparams   # the name store/convert.py looks up in every text module


def write_metadata(w, hp: GraniteHparams) -> None:
    write_decoder_shape(w, hp)
    w.add_vocab_size(hp.n_vocab)
    w.add_rope_dimension_count(hp.head_dim)
    w.add_attention_scale(hp.attention_scale)
    w.add_embedding_scale(hp.embedding_scale)
    w.add_residual_scale(hp.residual_scale)
    w.add_logit_scale(hp.logit_scale)


gguf_name = llama.gguf_name            # Llama's tensor names (and optional biases)
expected_names = llama.expected_names
fix_tensor = llama.fix_tensor          # q/k rows permuted for adjacent-pair rope
extra_tensors = llama.extra_tensors    # rope_freqs.weight under llama3 scaling


def write_tokenizer(w, hf_dir: Path, config: dict) -> int:
    """tokenizer.ggml.* (model "gpt2", pre "refact": Granite 3's tokenizer splits digits one by
    one, then GPT-2's byte-level regex, which is what llama.cpp's hash names it) and
    tokenizer.chat_template; returns the vocabulary size."""
    if not (hf_dir / "tokenizer.json").is_file():
        raise ConvertError(f"{hf_dir}: no tokenizer.json (Granite needs its byte-level BPE tokenizer.json)")
    n_vocab = int(text_config(config).get("vocab_size") or _DEFAULTS["vocab_size"])
    return write_bpe_tokenizer(w, hf_dir, config, n_vocab, "refact")
