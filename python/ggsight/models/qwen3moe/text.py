"""Qwen3-MoE text decoder: Qwen3's attention (per-head QK RMSNorm before a NEOX rope, GQA) and
on every layer a sparse mixture of experts (softmax router, top-k, optionally renormalised
weights on the experts' outputs, no shared expert). Read top to bottom like the reference."""
from __future__ import annotations

import math

from ...ggml import Tensor
from ...nn import Attention, DenseDecoder, WeightBinder
from ...nn.decoder import ROPE_NEOX
from ...nn.moe import experts_swiglu, sum_slots, top_k_experts
from .config import Qwen3MoeConfig

# llama.cpp clamps the sum of the chosen weights before dividing (f16's smallest normal)
_MIN_WEIGHT_SUM = 6.103515625e-5


class Qwen3MoeLayer:
    def __init__(self, w: WeightBinder, il: int, c: Qwen3MoeConfig):
        p = f"blk.{il}."
        self.attn_norm = w(p + "attn_norm.weight", (c.n_embd,))
        self.attn = Attention(w, il, c.n_embd, c.n_head, c.n_head_kv, c.head_dim, qk_norm=True)   # Qwen3's
        self.ffn_norm = w(p + "ffn_norm.weight", (c.n_embd,))
        self.router = w(p + "ffn_gate_inp.weight", (c.n_embd, c.n_expert))
        self.gate_exps = w(p + "ffn_gate_exps.weight", (c.n_embd, c.n_ff_expert, c.n_expert))
        self.up_exps = w(p + "ffn_up_exps.weight", (c.n_embd, c.n_ff_expert, c.n_expert))
        self.down_exps = w(p + "ffn_down_exps.weight", (c.n_ff_expert, c.n_embd, c.n_expert))


class Qwen3MoeText(DenseDecoder):
    config_class = Qwen3MoeConfig
    rope_mode = ROPE_NEOX

    def make_layers(self, w: WeightBinder, c) -> list:
        return [Qwen3MoeLayer(w, il, c) for il in range(c.n_layer)]

    def mlp(self, L: Qwen3MoeLayer, x: Tensor, inp, il: int) -> Tensor:
        """The k experts of highest router probability, their outputs weighted by those
        probabilities (renormalised over the k when norm_topk)."""
        c = self.config
        k, n_tokens = c.n_expert_used, inp.n_tokens
        logits = L.router.mul_mat(x).named(f"ffn_moe_logits-{il}")                  # [n_expert, n_tokens]
        probs = logits.soft_max().named(f"ffn_moe_probs-{il}")
        chosen = top_k_experts(probs, k)                                             # [k, n_tokens] i32
        weights = probs.reshape(1, c.n_expert, n_tokens).get_rows(chosen)           # [1, k, n_tokens]
        if c.norm_topk:
            weights = weights.reshape(k, n_tokens)
            total = weights.sum_rows().clamp(_MIN_WEIGHT_SUM, math.inf)             # [1, n_tokens]
            weights = weights.div(total).reshape(1, k, n_tokens)
        out = experts_swiglu(L.gate_exps, L.up_exps, L.down_exps, x.reshape(c.n_embd, 1, n_tokens), chosen)
        return sum_slots(out.mul(weights)).named(f"ffn_moe_out-{il}")             # [n_embd, n_tokens]
