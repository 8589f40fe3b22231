"""Llama 4 text: Hugging Face config + tensor names -> GGUF metadata + tensor names, and the
byte-level BPE vocabulary, in llama.cpp's convention for arch "llama4" (the vision tower is
convert_mmproj.py).

llama.cpp hard-codes what Llama 4 Scout/Maverick use (chunk 8192, a NoPE layer every 4th,
temperature tuning with floor 8192 / scale 0.1, q/k L2 norm unless 128 experts); the config's
own values go to ggsight's keys llama4.attention.{chunk_size, rope_layers, temperature_tuning,
floor_scale, attn_scale, qk_l2_norm}, which llama.cpp ignores.

One value change, llama.cpp's: the experts' fused gate_up_proj [experts, n_embd, 2 * n_ff]
(HF multiplies x @ w) becomes ffn_gate_exps and ffn_up_exps [experts, n_ff, n_embd] (the first
and second half of the columns, transposed), down_proj [experts, n_ff, n_embd] becomes
ffn_down_exps [experts, n_embd, n_ff]: in ggml order [n_embd, n_ff, experts] and
[n_ff, n_embd, experts], rows of one expert contiguous, as ggml_mul_mat_id takes them. HF's
rotary embedding rotates adjacent pairs (complex multiply), llama.cpp's "normal" rope does the
same, so q/k are not permuted."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import ConvertError, architecture, text_config, write_bpe_tokenizer
from ..hf_decoder import rope, write_decoder_shape

ARCH = "llama4"
ARCHITECTURES = ("Llama4ForConditionalGeneration",)

# Llama4TextConfig defaults (transformers 5.x), for fields a config leaves out
_DEFAULTS = dict(vocab_size=202_048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16_384,
                 num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
                 hidden_act="silu", max_position_embeddings=131_072, rms_norm_eps=1e-5, num_experts_per_tok=1,
                 num_local_experts=16, interleave_moe_layer_step=1, use_qk_norm=True, no_rope_layer_interval=4,
                 attention_chunk_size=8192, attn_temperature_tuning=True, floor_scale=8192, attn_scale=0.1,
                 attention_bias=False, rope_theta=500_000.0)

_ATTN = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
         "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm"}
_DENSE = {"feed_forward.gate_proj": "ffn_gate", "feed_forward.up_proj": "ffn_up",
          "feed_forward.down_proj": "ffn_down"}
_MOE = {"feed_forward.router": "ffn_gate_inp", "feed_forward.shared_expert.gate_proj": "ffn_gate_shexp",
        "feed_forward.shared_expert.up_proj": "ffn_up_shexp",
        "feed_forward.shared_expert.down_proj": "ffn_down_shexp"}
_EXPERTS = {"feed_forward.experts.gate_up_proj": ("ffn_gate_exps", "ffn_up_exps"),
            "feed_forward.experts.down_proj": ("ffn_down_exps",)}
# Hub checkpoints and transformers 5 save_pretrained (5.24 has no key mapping for Llama 4):
# language_model.model.*, language_model.lm_head; the layout transformers 5 uses for the other
# VLMs (a base model under model.): model.language_model.*, lm_head.
_TEXT_PREFIXES = ("language_model.model.", "model.language_model.")
_LM_HEADS = ("language_model.lm_head.weight", "lm_head.weight")
_SKIP_PREFIXES = ("vision_model.", "multi_modal_projector.", "model.vision_model.", "model.multi_modal_projector.")
_LAYER_RE = re.compile(r"layers\.(\d+)\.(.+?)(?:\.weight)?$")


@dataclass(frozen=True)
class Llama4Hparams:
    n_vocab: int
    n_embd: int
    n_ff: int                       # intermediate_size_mlp: the dense layers
    n_ff_exp: int                   # intermediate_size: each expert and the shared expert
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    norm_eps: float
    rope_base: float
    rope_factors: tuple[float, ...] | None   # llama3 scaling: theta divisors, head_dim / 2
    n_expert: int
    n_expert_used: int
    moe_step: int                   # layer i is MoE iff (i + 1) % moe_step == 0
    rope_layers: tuple[bool, ...]   # False: a NoPE layer with global attention
    chunk_size: int | None          # chunked attention on the RoPE layers; None: no chunking
    temperature_tuning: bool
    floor_scale: int
    attn_scale: float
    qk_norm: bool
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Llama4Hparams":
        architecture(config, ARCHITECTURES, where, "Llama 4")
        hp = {**_DEFAULTS, **text_config(config)}
        if hp["hidden_act"] != "silu":
            raise ConvertError(f"{where}: hidden_act {hp['hidden_act']!r} is not supported (silu)")
        if hp["attention_bias"]:
            raise ConvertError(f"{where}: attention_bias is not supported "
                               f"(llama.cpp's llama4 has no attention biases)")
        n_layer, n_head = int(hp["num_hidden_layers"]), int(hp["num_attention_heads"])
        step = int(hp["interleave_moe_layer_step"])
        if step < 1:
            raise ConvertError(f"{where}: interleave_moe_layer_step {step} must be at least 1")
        moe = list(range(step - 1, n_layer, step))
        if hp.get("moe_layers") is not None and sorted(hp["moe_layers"]) != moe:
            raise ConvertError(f"{where}: moe_layers {hp['moe_layers']} is not every interleave_moe_layer_step-th "
                               f"layer {moe} (llama.cpp's llama4 has only that pattern)")
        rope_layers = _rope_layers(hp, n_layer, where)
        chunk = _chunk_size(hp, rope_layers, where)
        # as Llama4TextConfig: a missing head_dim is 128, a null one hidden_size / heads
        head_dim = int(hp["head_dim"] or int(hp["hidden_size"]) // n_head)
        base, factors = _rope(hp, head_dim, where)
        tied = bool(config.get("tie_word_embeddings")
                    or (config.get("text_config") or {}).get("tie_word_embeddings"))
        return cls(
            n_vocab=int(hp["vocab_size"]), n_embd=int(hp["hidden_size"]), n_ff=int(hp["intermediate_size_mlp"]),
            n_ff_exp=int(hp["intermediate_size"]), n_layer=n_layer, n_head=n_head,
            n_head_kv=int(hp["num_key_value_heads"] or n_head), head_dim=head_dim,
            n_ctx=int(hp["max_position_embeddings"]), norm_eps=float(hp["rms_norm_eps"]), rope_base=base,
            rope_factors=factors, n_expert=int(hp["num_local_experts"]),
            n_expert_used=int(hp["num_experts_per_tok"]), moe_step=step, rope_layers=rope_layers,
            chunk_size=chunk, temperature_tuning=bool(hp["attn_temperature_tuning"]),
            floor_scale=int(hp["floor_scale"]), attn_scale=float(hp["attn_scale"]),
            qk_norm=bool(hp["use_qk_norm"]), tied=tied)

    def is_moe(self, layer: int) -> bool:
        return (layer + 1) % self.moe_step == 0


Hparams = Llama4Hparams   # the name store/convert.py looks up in every text module


def _rope_layers(hp: dict, n_layer: int, where: str) -> tuple[bool, ...]:
    """Llama4TextConfig: no_rope_layers[i] == 1 means layer i uses RoPE (despite the name); an
    empty or missing list means a NoPE layer every no_rope_layer_interval-th layer."""
    flags = hp.get("no_rope_layers")
    if not flags:
        interval = int(hp["no_rope_layer_interval"])
        flags = [int((i + 1) % interval != 0) for i in range(n_layer)]
    if len(flags) < n_layer:
        raise ConvertError(f"{where}: no_rope_layers has {len(flags)} entries for {n_layer} layers")
    return tuple(bool(f) for f in flags[:n_layer])


def _chunk_size(hp: dict, rope_layers: tuple[bool, ...], where: str) -> int | None:
    """HF attends in chunks on the layers layer_types calls chunked_attention, which by default
    are the RoPE layers when attention_chunk_size is set. GGUF has one flag per layer for both,
    so the two sets must agree (or no layer is chunked, as in MobileLLM's all-full layer_types)."""
    chunk = hp.get("attention_chunk_size")
    types = hp.get("layer_types") or ["chunked_attention" if r and chunk is not None else "full_attention"
                                      for r in rope_layers]
    if len(types) < len(rope_layers) or set(types) - {"chunked_attention", "full_attention"}:
        raise ConvertError(f"{where}: layer_types {types} must give chunked_attention or full_attention "
                           f"for each of the {len(rope_layers)} layers")
    chunked = tuple(t == "chunked_attention" for t in types[:len(rope_layers)])
    if not any(chunked):
        return None
    if chunk is None or chunked != rope_layers:
        raise ConvertError(f"{where}: layer_types {types} must chunk exactly the RoPE layers "
                           f"(no_rope_layers), with attention_chunk_size set")
    return int(chunk)


def _rope(hp: dict, head_dim: int, where: str) -> tuple[float, tuple[float, ...] | None]:
    """(theta, llama3 frequency factors or None)."""
    base, _, factors = rope(hp, head_dim, where, kinds=("default", "llama3"))
    return base, factors


def write_metadata(w, hp: Llama4Hparams) -> None:
    write_decoder_shape(w, hp)
    w.add_vocab_size(hp.n_vocab)
    w.add_rope_dimension_count(hp.head_dim)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    w.add_expert_count(hp.n_expert)
    w.add_expert_used_count(hp.n_expert_used)
    w.add_expert_feed_forward_length(hp.n_ff_exp)
    w.add_interleave_moe_layer_step(hp.moe_step)
    # from here on ggsight's keys, the config's values where llama.cpp hard-codes Scout's
    if hp.chunk_size is not None:
        w.add_uint32(f"{ARCH}.attention.chunk_size", hp.chunk_size)
    else:   # llama.cpp's own key for "no chunked attention" (it then ropes every layer)
        w.add_sliding_window(0)
    w.add_array(f"{ARCH}.attention.rope_layers", list(hp.rope_layers))
    w.add_bool(f"{ARCH}.attention.temperature_tuning", hp.temperature_tuning)
    w.add_uint32(f"{ARCH}.attention.floor_scale", hp.floor_scale)
    w.add_float32(f"{ARCH}.attention.attn_scale", hp.attn_scale)
    w.add_bool(f"{ARCH}.attention.qk_l2_norm", hp.qk_norm)


def gguf_name(hf_name: str, hp: Llama4Hparams) -> str | tuple[str, ...] | None:
    """GGUF tensor name(s) for a HF tensor name: two for the fused experts' gate_up_proj, None
    for tensors that are not part of the text GGUF (vision tower, projector, a tied lm_head).
    Raises ValueError for unknown names."""
    if hf_name.startswith(_SKIP_PREFIXES):
        return None
    if hf_name in _LM_HEADS:
        return None if hp.tied else "output.weight"
    rest = next((hf_name[len(p):] for p in _TEXT_PREFIXES if hf_name.startswith(p)), None)
    if rest == "embed_tokens.weight":
        return "token_embd.weight"
    if rest == "norm.weight":
        return "output_norm.weight"
    m = _LAYER_RE.match(rest or "")
    if m and int(m.group(1)) < hp.n_layer:
        i, path, has_weight = int(m.group(1)), m.group(2), hf_name.endswith(".weight")
        table = {**_ATTN, **(_MOE if hp.is_moe(i) else _DENSE)}
        if path in table and has_weight:
            return f"blk.{i}.{table[path]}.weight"
        if path in _EXPERTS and not has_weight and hp.is_moe(i):
            return tuple(f"blk.{i}.{name}.weight" for name in _EXPERTS[path])
    raise ValueError(f"unexpected tensor {hf_name!r}")


def expected_names(hp: Llama4Hparams) -> set[str]:
    names = {"token_embd.weight", "output_norm.weight"}
    for i in range(hp.n_layer):
        ffn = [*_MOE.values(), *(n for ns in _EXPERTS.values() for n in ns)] if hp.is_moe(i) else _DENSE.values()
        names |= {f"blk.{i}.{n}.weight" for n in (*_ATTN.values(), *ffn)}
    if not hp.tied:
        names.add("output.weight")
    return names


def gguf_shape(name: str, shape: tuple[int, ...], hp: Llama4Hparams) -> tuple[int, ...]:
    """The GGUF tensor's shape in PyTorch order: the experts' split and transposed; raises
    ValueError when an expert tensor does not fit the config."""
    kind = name.split(".")[2] if name.startswith("blk.") else ""
    if kind not in ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"):
        return shape
    fused = kind != "ffn_down_exps"
    want = (hp.n_expert, hp.n_embd, 2 * hp.n_ff_exp) if fused else (hp.n_expert, hp.n_ff_exp, hp.n_embd)
    if tuple(shape) != want:
        raise ValueError(f"{'gate_up_proj' if fused else 'down_proj'} of {name} has shape {list(shape)}, "
                         f"the config implies {list(want)} (num_local_experts, hidden_size, intermediate_size)")
    return (hp.n_expert, hp.n_ff_exp, hp.n_embd) if fused else (hp.n_expert, hp.n_embd, hp.n_ff_exp)


def fix_tensor(name: str, data: np.ndarray, n_vocab_real: int, hp=None) -> np.ndarray:
    """The experts' split + transpose (module docstring); HF's RMSNorm scales by w (not 1 + w)
    and the embedding keeps its rows (the vocabulary is padded to match): nothing else changes."""
    if name.endswith(("ffn_gate_exps.weight", "ffn_up_exps.weight")):
        half = data.shape[-1] // 2
        part = data[:, :, :half] if "ffn_gate_exps" in name else data[:, :, half:]   # HF: gate, up = chunk(2)
        return part.transpose(0, 2, 1)
    if name.endswith("ffn_down_exps.weight"):
        return data.transpose(0, 2, 1)
    return data


def extra_tensors(hp: Llama4Hparams) -> dict[str, np.ndarray]:
    """llama.cpp's rope_freqs.weight for llama3 rope scaling (no tensor otherwise)."""
    if hp.rope_factors is None:
        return {}
    return {"rope_freqs.weight": np.asarray(hp.rope_factors, dtype=np.float32)}


def write_tokenizer(w, hf_dir: Path, config: dict) -> int:
    """tokenizer.ggml.* (model "gpt2", pre "llama4": what llama.cpp's converter writes for Llama
    4, whose regex is GPT-4o's, not Llama 3's "llama-bpe") and tokenizer.chat_template; returns
    the vocabulary size (config vocab_size, or more if the tokenizer has more). <|eom|> (end of
    a tool call, in HF's eos_token_id list) is written as the eom token, so that it ends
    generation too."""
    if not (hf_dir / "tokenizer.json").is_file():
        raise ConvertError(f"{hf_dir}: no tokenizer.json (Llama 4 needs its byte-level BPE tokenizer.json)")
    n_vocab = int(text_config(config).get("vocab_size") or _DEFAULTS["vocab_size"])
    return write_bpe_tokenizer(w, hf_dir, config, n_vocab, "llama4", extra_ids={"eom": "<|eom|>"})
