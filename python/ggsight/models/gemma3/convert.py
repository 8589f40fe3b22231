"""Gemma 3 text: Hugging Face config + tensor names -> GGUF metadata + tensor names (llama.cpp's
convention for arch "gemma3", plus the keys ggsight reads that llama.cpp hard-codes)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import (ConvertError, architecture, chat_template, read_json, read_optional_json,
                        special_token_ids, write_decoder_shape)

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
class Gemma3Hparams:
    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    norm_eps: float
    rope_base: float            # global layers
    rope_base_swa: float        # sliding-window layers
    rope_linear_factor: float   # 1.0 = no scaling (global layers only)
    sliding_window: int
    swa_pattern: int            # every swa_pattern-th layer is global
    query_pre_attn_scalar: float
    final_logit_softcap: float | None
    tied: bool

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
            n_vocab=int(hp["vocab_size"]), n_embd=int(hp["hidden_size"]), n_ff=int(hp["intermediate_size"]),
            n_layer=n_layer, n_head=int(hp["num_attention_heads"]), n_head_kv=int(hp["num_key_value_heads"]),
            head_dim=int(hp["head_dim"]), n_ctx=int(hp["max_position_embeddings"]),
            norm_eps=float(hp["rms_norm_eps"]), rope_base=base, rope_base_swa=base_swa,
            rope_linear_factor=factor, sliding_window=int(hp["sliding_window"]),
            swa_pattern=_swa_pattern(hp, n_layer, where),
            query_pre_attn_scalar=float(hp["query_pre_attn_scalar"]),
            # transformers applies the softcap in Gemma3ForCausalLM only; its ConditionalGeneration
            # head ignores the text config's value (released checkpoints set none either way)
            final_logit_softcap=hp.get("final_logit_softcapping") if arch == "Gemma3ForCausalLM" else None,
            tied=bool(tied))


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
    import gguf
    write_decoder_shape(w, hp)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    if hp.rope_linear_factor != 1.0:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp.rope_linear_factor)
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


# ------------------------------------------------------------------- vocabulary (SentencePiece)

class _TokenType:   # llama.cpp's llama_token_type
    NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


_BYTE_RE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def _vocab_from_tokenizer_json(path: Path) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary (Gemma: BPE with byte fallback) from a HF fast
    tokenizer. Scores: a BPE tokenizer.json has none, so normal tokens are ranked by the first
    merge that makes them (what SentencePiece's BPE scores order); control/user-defined -1000
    and bytes 0, as in llama.cpp's Gemma 3 GGUFs."""
    tj = read_json(path)
    model = tj.get("model") or {}
    kind = model.get("type")
    id_to_tok: dict[int, str] = {}
    scores: dict[int, float] = {}
    if kind == "Unigram":
        for i, (tok, score) in enumerate(model["vocab"]):
            id_to_tok[i], scores[i] = tok, float(score)
        unk = model.get("unk_id")
        unk_tok = id_to_tok.get(unk) if unk is not None else None
    elif kind == "BPE":
        for tok, i in model["vocab"].items():
            id_to_tok[int(i)] = tok
        unk_tok = model.get("unk_token")
        first_merge: dict[str, int] = {}
        for rank, m in enumerate(model.get("merges") or []):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            first_merge.setdefault(a + b, rank)
        order = sorted(id_to_tok, key=lambda i: (first_merge.get(id_to_tok[i], 1 << 62), i))
        for rank, i in enumerate(order):
            scores[i] = -float(rank)
    else:
        raise ConvertError(f"{path}: tokenizer model type {kind!r} is not supported (BPE or Unigram)")
    special: dict[int, bool] = {}
    for t in tj.get("added_tokens") or []:
        id_to_tok[int(t["id"])] = t["content"]
        special[int(t["id"])] = bool(t.get("special"))
    n = max(id_to_tok) + 1
    tokens, out_scores, types = [], [], []
    for i in range(n):
        tok = id_to_tok.get(i)
        if tok is None:   # a hole in the ids: llama.cpp pads the same way
            tokens.append(f"[PAD{i}]"), out_scores.append(-1000.0), types.append(_TokenType.UNUSED)
            continue
        if tok == unk_tok:
            ty = _TokenType.UNKNOWN
        elif i in special:
            ty = _TokenType.CONTROL if special[i] else _TokenType.USER_DEFINED
        elif _BYTE_RE.match(tok):
            ty = _TokenType.BYTE
        else:
            ty = _TokenType.NORMAL
        score = {_TokenType.NORMAL: scores.get(i, 0.0), _TokenType.BYTE: 0.0}.get(ty, -1000.0)
        tokens.append(tok), out_scores.append(score), types.append(ty)
    return tokens, out_scores, types


def _vocab_from_sentencepiece(path: Path) -> tuple[list[str], list[float], list[int]]:
    try:
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise ConvertError(f"{path.parent}: has tokenizer.model but no tokenizer.json; reading it "
                           f"needs the `sentencepiece` package (pip install sentencepiece)") from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    P = sentencepiece_model_pb2.ModelProto.SentencePiece
    kinds = {P.NORMAL: _TokenType.NORMAL, P.UNKNOWN: _TokenType.UNKNOWN, P.CONTROL: _TokenType.CONTROL,
             P.USER_DEFINED: _TokenType.USER_DEFINED, P.UNUSED: _TokenType.UNUSED, P.BYTE: _TokenType.BYTE}
    del sentencepiece
    return ([p.piece for p in proto.pieces], [float(p.score) for p in proto.pieces],
            [kinds.get(p.type, _TokenType.NORMAL) for p in proto.pieces])


def write_tokenizer(w, hf_dir: Path, config: dict) -> int:
    """tokenizer.ggml.* and tokenizer.chat_template; returns the vocabulary size."""
    if (hf_dir / "tokenizer.json").is_file():
        tokens, scores, types = _vocab_from_tokenizer_json(hf_dir / "tokenizer.json")
    elif (hf_dir / "tokenizer.model").is_file():
        tokens, scores, types = _vocab_from_sentencepiece(hf_dir / "tokenizer.model")
    else:
        raise ConvertError(f"{hf_dir}: no tokenizer.json or tokenizer.model")
    tcfg = read_optional_json(hf_dir / "tokenizer_config.json")
    to_id = {t: i for i, t in enumerate(tokens)}
    ids = special_token_ids(hf_dir, config, to_id, len(tokens))

    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    for kind, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id),
                      ("unk", w.add_unk_token_id), ("pad", w.add_pad_token_id)):
        if kind in ids:
            add(ids[kind])
    if "<end_of_turn>" in to_id:
        w.add_eot_token_id(to_id["<end_of_turn>"])
    w.add_add_bos_token(bool(tcfg.get("add_bos_token", True)))
    w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))
    w.add_add_space_prefix(False)
    template = chat_template(hf_dir)
    if template:
        w.add_chat_template(template)
    return len(tokens)
