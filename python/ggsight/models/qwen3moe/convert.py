"""Qwen3-MoE text: Hugging Face config + tensor names -> GGUF metadata + tensor names, and the
byte-level BPE vocabulary, in llama.cpp's convention for arch "qwen3moe" (plus llama.cpp's
qwen3moe.expert_weights_norm key with the config's norm_topk_prob, which llama.cpp's qwen3moe
assumes true).

The experts come one tensor per expert (mlp.experts.E.{gate,up,down}_proj, as on the Hub and as
transformers 5 saves them) and are stacked in expert order into llama.cpp's ffn_{gate,up}_exps
[experts, n_ff, n_embd] and ffn_down_exps [experts, n_embd, n_ff] (PyTorch order); nothing else
changes. (transformers' in-memory fused gate_up_proj, which llama.cpp's converter also reads, is
not a layout transformers 5.24 saves.)"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..hf_common import ConvertError, architecture
from ..hf_decoder import DecoderShape, decoder_shape, rope, write_decoder_shape
# Qwen2's byte-level BPE vocabulary (pre "qwen2", what llama.cpp writes for Qwen3's); store/convert.py calls it
from ..qwen2.convert import write_tokenizer  # noqa: F401

ARCH = "qwen3moe"
ARCHITECTURES = ("Qwen3MoeForCausalLM",)

# Qwen3MoeConfig defaults (transformers 5.x), for fields a config leaves out
_DEFAULTS = dict(vocab_size=151_936, hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
                 num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=4, head_dim=None,
                 hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=10_000.0,
                 attention_bias=False, use_sliding_window=False, decoder_sparse_step=1, num_experts=128,
                 num_experts_per_tok=8, norm_topk_prob=False, mlp_only_layers=[], tie_word_embeddings=False)

_LAYER = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
          "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
          "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "ffn_norm", "mlp.gate": "ffn_gate_inp"}
_EXPERT = {"gate_proj": "ffn_gate_exps", "up_proj": "ffn_up_exps", "down_proj": "ffn_down_exps"}
_LAYER_RE = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight$")
_EXPERT_RE = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


@dataclass(frozen=True)
class Qwen3MoeHparams(DecoderShape):
    n_ff_exp: int
    n_expert: int
    n_expert_used: int
    norm_topk: bool

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Qwen3MoeHparams":
        architecture(config, ARCHITECTURES, where, "Qwen3-MoE")
        hp = {**_DEFAULTS, **config}
        if "num_local_experts" in config:   # transformers 5 saves num_experts under this name
            hp["num_experts"] = config["num_local_experts"]
        refuse = {"hidden_act": hp["hidden_act"] != "silu", "attention_bias": bool(hp["attention_bias"]),
                  "use_sliding_window": bool(hp["use_sliding_window"]),
                  "decoder_sparse_step": int(hp["decoder_sparse_step"]) != 1, "mlp_only_layers": bool(hp["mlp_only_layers"])}
        bad = [f"{k}={hp[k]!r}" for k, v in refuse.items() if v]
        if bad:   # llama.cpp's qwen3moe: silu experts on every layer, no biases, no window
            raise ConvertError(f"{where}: {', '.join(bad)} is not supported by the qwen3moe architecture")
        n_head = int(hp["num_attention_heads"])
        head_dim = int(hp["head_dim"] or int(hp["hidden_size"]) // n_head)
        return cls(
            **decoder_shape(hp, head_dim=head_dim, rope_base=rope(hp, head_dim, where, kinds=("default",))[0]),
            n_ff_exp=int(hp["moe_intermediate_size"]), n_expert=int(hp["num_experts"]),
            n_expert_used=int(hp["num_experts_per_tok"]), norm_topk=bool(hp["norm_topk_prob"]))


Hparams = Qwen3MoeHparams   # the name store/convert.py looks up in every text module


def write_metadata(w, hp: Qwen3MoeHparams) -> None:
    write_decoder_shape(w, hp)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    w.add_expert_count(hp.n_expert)
    w.add_expert_used_count(hp.n_expert_used)
    w.add_expert_feed_forward_length(hp.n_ff_exp)
    w.add_expert_weights_norm(hp.norm_topk)


def stacked(hf_name: str, hp: Qwen3MoeHparams) -> tuple[str, int] | None:
    """(GGUF name, expert index) of one expert's matrix; None for every other tensor."""
    m = _EXPERT_RE.match(hf_name)
    if m is None or int(m.group(1)) >= hp.n_layer or int(m.group(2)) >= hp.n_expert:
        return None
    return f"blk.{m.group(1)}.{_EXPERT[m.group(3)]}.weight", int(m.group(2))


def gguf_name(hf_name: str, hp: Qwen3MoeHparams) -> str | None:
    """GGUF tensor name for a HF tensor name (the experts' are `stacked`), None for a tied
    lm_head. Raises ValueError for unknown names."""
    if hf_name == "lm_head.weight":
        return None if hp.tied else "output.weight"
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    m = _LAYER_RE.match(hf_name)
    if m and int(m.group(1)) < hp.n_layer and m.group(2) in _LAYER:
        return f"blk.{m.group(1)}.{_LAYER[m.group(2)]}.weight"
    raise ValueError(f"unexpected tensor {hf_name!r}")


def expected_names(hp: Qwen3MoeHparams) -> set[str]:
    names = {"token_embd.weight", "output_norm.weight"}
    names |= {f"blk.{i}.{n}.weight" for i in range(hp.n_layer) for n in (*_LAYER.values(), *_EXPERT.values())}
    if not hp.tied:
        names.add("output.weight")
    return names


def gguf_shape(name: str, shape: tuple[int, ...], hp: Qwen3MoeHparams) -> tuple[int, ...]:
    """Shapes as they are; raises ValueError when the stacked experts do not fit the config."""
    kind = name.split(".")[2] if name.startswith("blk.") else ""
    if kind in _EXPERT.values():
        want = ((hp.n_expert, hp.n_embd, hp.n_ff_exp) if kind == "ffn_down_exps"
                else (hp.n_expert, hp.n_ff_exp, hp.n_embd))
        if tuple(shape) != want:
            raise ValueError(f"the experts of {name} stack to {list(shape)}, the config implies {list(want)} "
                             f"(num_experts, moe_intermediate_size, hidden_size)")
    return shape


def fix_tensor(name: str, data: np.ndarray, n_vocab_real: int, hp=None) -> np.ndarray:
    """No value changes (Qwen3's RMSNorm scales by w; the embedding keeps its padded rows)."""
    return data
