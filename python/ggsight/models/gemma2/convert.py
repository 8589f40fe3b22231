"""Gemma 2 text: Hugging Face config + tensor names -> GGUF metadata + tensor names, in
llama.cpp's convention for arch "gemma2" (plus ggsight's query_pre_attn_scalar key, which
llama.cpp derives from the layer count instead of reading it). The vocabulary is Gemma 3's
SentencePiece-style one (tokenizer.json or tokenizer.model)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Gemma 3's value changes (norms stored as 1 + w, the embedding cut to the vocabulary) and
# vocabulary format are Gemma 2's; store/convert.py calls both
from ..gemma3.convert import fix_tensor, write_tokenizer  # noqa: F401
from ..hf_common import ConvertError, architecture
from ..hf_decoder import DecoderShape, decoder_shape, rope, write_decoder_shape

ARCH = "gemma2"
ARCHITECTURES = ("Gemma2ForCausalLM",)

# Gemma2Config defaults (transformers 5.x), for fields a config leaves out
_DEFAULTS = dict(vocab_size=256_000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                 num_attention_heads=8, num_key_value_heads=4, head_dim=256, hidden_activation="gelu_pytorch_tanh",
                 max_position_embeddings=8192, rms_norm_eps=1e-6, query_pre_attn_scalar=256, sliding_window=4096,
                 final_logit_softcapping=30.0, attn_logit_softcapping=50.0, attention_bias=False,
                 rope_theta=10_000.0)

# HF module path inside a decoder layer -> GGUF tensor name inside blk.N
_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_LAYER_RE = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight$")


@dataclass(frozen=True)
class Gemma2Hparams(DecoderShape):
    sliding_window: int
    swa_pattern: int            # layer il global iff il % swa_pattern == swa_pattern - 1
    query_pre_attn_scalar: float
    attn_softcap: float | None
    final_logit_softcap: float | None

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Gemma2Hparams":
        architecture(config, ARCHITECTURES, where, "Gemma 2")
        hp = {**_DEFAULTS, **config}
        if hp["hidden_activation"] != "gelu_pytorch_tanh":
            raise ConvertError(f"{where}: hidden_activation {hp['hidden_activation']!r} is not supported "
                               f"(gelu_pytorch_tanh)")
        if hp["attention_bias"]:
            raise ConvertError(f"{where}: attention_bias is not supported (llama.cpp's gemma2 has no biases)")
        if hp.get("use_bidirectional_attention"):
            raise ConvertError(f"{where}: bidirectional attention is not supported")
        if hp["sliding_window"] is None:
            raise ConvertError(f"{where}: sliding_window null (no window on any layer) is not supported")
        n_layer = int(hp["num_hidden_layers"])
        return cls(
            **decoder_shape(hp, head_dim=int(hp["head_dim"]), tied=bool(config.get("tie_word_embeddings", True)),
                            rope_base=rope(hp, int(hp["head_dim"]), where, kinds=("default",))[0]),
            sliding_window=int(hp["sliding_window"]), swa_pattern=_swa_pattern(hp, n_layer, where),
            query_pre_attn_scalar=float(hp["query_pre_attn_scalar"]),
            attn_softcap=hp["attn_logit_softcapping"], final_logit_softcap=hp["final_logit_softcapping"])


Hparams = Gemma2Hparams   # the name store/convert.py looks up in every text module


def _swa_pattern(hp: dict, n_layer: int, where: str) -> int:
    """HF's layer_types (by default sliding, full, sliding, full ...) as the period N of
    llama.cpp's pattern: layer il is global iff il % N == N - 1."""
    types = hp.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention"
                                      for i in range(n_layer)]
    if len(types) != n_layer or set(types) - {"full_attention", "sliding_attention"}:
        raise ConvertError(f"{where}: layer_types {types} must give full_attention or sliding_attention "
                           f"for each of the {n_layer} layers")
    glob = [i for i, t in enumerate(types) if t == "full_attention"]
    pattern = glob[0] + 1 if glob else n_layer + 1
    if [i % pattern == pattern - 1 for i in range(n_layer)] != [t == "full_attention" for t in types]:
        raise ConvertError(f"{where}: layer_types {types} is not periodic (every N-th layer global), which "
                           f"the GGUF key {ARCH}.attention.sliding_window_pattern cannot express")
    return pattern


def write_metadata(w, hp: Gemma2Hparams) -> None:
    write_decoder_shape(w, hp)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    # 0 where the config has none: llama.cpp's defaults (50, 30) apply only to a missing key
    w.add_attn_logit_softcapping(float(hp.attn_softcap or 0.0))
    w.add_final_logit_softcapping(float(hp.final_logit_softcap or 0.0))
    w.add_sliding_window(hp.sliding_window)
    if hp.swa_pattern != 2:   # llama.cpp's gemma2 assumes 2 where the key is missing
        w.add_uint32(f"{ARCH}.attention.sliding_window_pattern", hp.swa_pattern)
    # ggsight's key; llama.cpp derives the value (models/gemma2/config.py)
    w.add_float32(f"{ARCH}.attention.query_pre_attn_scalar", hp.query_pre_attn_scalar)


def gguf_name(hf_name: str, hp: Gemma2Hparams) -> str | None:
    """GGUF tensor name for a HF tensor name; None for a tied lm_head. Raises ValueError for
    unknown names."""
    if hf_name == "lm_head.weight":
        return None if hp.tied else "output.weight"
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    m = _LAYER_RE.match(hf_name)
    if m and m.group(2) in _LAYER_NAMES and int(m.group(1)) < hp.n_layer:
        return f"blk.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}.weight"
    raise ValueError(f"unexpected tensor {hf_name!r}")


def expected_names(hp: Gemma2Hparams) -> set[str]:
    names = {"token_embd.weight", "output_norm.weight"}
    names |= {f"blk.{i}.{n}.weight" for i in range(hp.n_layer) for n in _LAYER_NAMES.values()}
    if not hp.tied:
        names.add("output.weight")
    return names
