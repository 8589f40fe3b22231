"""The decoder shape Llama-layout checkpoint converters share: the hyperparameters every family
reads from config.json the same way (DecoderShape, decoder_shape), their llama.cpp keys
(write_decoder_shape), and rope scaling (rope, llama3_rope_factors)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .hf_common import ConvertError


@dataclass(frozen=True)
class DecoderShape:
    """A family's frozen hparams start with these; it adds its own fields after them."""
    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    norm_eps: float
    rope_base: float
    tied: bool


def decoder_shape(hp: dict, *, head_dim: int, rope_base: float, tied: bool | None = None) -> dict:
    """DecoderShape's fields from an HF text config (defaults merged in) with the family's
    head_dim and rope theta; `tied` defaults to tie_word_embeddings."""
    n_head = int(hp["num_attention_heads"])
    return dict(
        n_vocab=int(hp["vocab_size"]), n_embd=int(hp["hidden_size"]), n_ff=int(hp["intermediate_size"]),
        n_layer=int(hp["num_hidden_layers"]), n_head=n_head, n_head_kv=int(hp.get("num_key_value_heads") or n_head),
        head_dim=int(head_dim), n_ctx=int(hp["max_position_embeddings"]), norm_eps=float(hp["rms_norm_eps"]),
        rope_base=float(rope_base), tied=bool(hp["tie_word_embeddings"] if tied is None else tied))


def write_decoder_shape(w, hp) -> None:
    """The llama.cpp keys every decoder GGUF has, from hparams with these attribute names, and
    linear rope scaling where the family's hparams carry a rope_linear_factor other than 1."""
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_layer_norm_rms_eps(hp.norm_eps)
    w.add_rope_freq_base(hp.rope_base)
    if getattr(hp, "rope_linear_factor", 1.0) != 1.0:
        import gguf
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp.rope_linear_factor)


# llama.cpp's defaults for llama3 rope scaling (LlamaModel.generate_extra_tensors)
_LLAMA3_DEFAULTS = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)


def rope(hp: dict, head_dim: int, where: str, kinds=("default", "linear", "llama3"),
         ) -> tuple[float, float, tuple[float, ...] | None]:
    """(theta, linear factor, llama3 divisors or None) from transformers 5 `rope_parameters` or
    the Hub's `rope_theta` + `rope_scaling` (which wins when both are given, as in HF); `kinds`:
    the rope types the family's GGUF can express."""
    params = dict(hp.get("rope_scaling") or hp.get("rope_parameters") or {})
    base = float(params.get("rope_theta", hp.get("rope_theta", 10_000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in kinds:
        raise ConvertError(f"{where}: rope type {kind!r} is not supported ({', '.join(kinds)})")
    if kind == "default":
        return base, 1.0, None
    if kind == "linear":
        return base, float(params["factor"]), None
    p = {**_LLAMA3_DEFAULTS, **params}
    return base, 1.0, llama3_rope_factors(base, head_dim, float(p["factor"]), float(p["low_freq_factor"]),
                                          float(p["high_freq_factor"]), float(p["original_max_position_embeddings"]))


def llama3_rope_factors(base: float, dim: int, factor: float, low: float, high: float,
                        old_ctx: float) -> tuple[float, ...]:
    """What ggml's rope divides each frequency by (HF's llama3 inv_freq, as a divisor), as
    llama.cpp's converter computes it: 1 for wavelengths under old_ctx / high, `factor` above
    old_ctx / low, a smooth blend between (Llama 4 Scout has low == high: no blend band)."""
    freqs = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return tuple(out)
