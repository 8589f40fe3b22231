"""Qwen3-MoE text decoder: Qwen3's attention (per-head QK RMSNorm before a NEOX rope, GQA) and
on every layer a sparse mixture of experts (softmax router, top-k, optionally renormalised
weights on the experts' outputs, no shared expert). Read top to bottom like the reference."""
from __future__ import annotations

import math

from ...cache import FULL, BatchInputs, CacheKind
from ...ggml import Tensor
from ...nn import Attention, Rope, WeightBinder, output_rows, rms_norm
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


class Qwen3MoeText:
    def __init__(self, gguf, weights, config: Qwen3MoeConfig | None = None):
        self.config = c = config or Qwen3MoeConfig.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        self.rope = Rope(c.n_rot, ROPE_NEOX, c.rope_base, c.rope_freq_scale)
        self.layers = [Qwen3MoeLayer(w, il, c) for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd   # tied in the small Qwen3s
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True

    def cache_kinds(self) -> list[CacheKind]:
        return [FULL] * self.config.n_layer

    def embed(self, tokens: Tensor) -> Tensor:
        return self.tok_embd.get_rows(tokens).named("inp_embd")

    def _moe(self, L: Qwen3MoeLayer, x: Tensor, n_tokens: int, il: int) -> Tensor:
        """The k experts of highest router probability, their outputs weighted by those
        probabilities (renormalised over the k when norm_topk)."""
        c = self.config
        k = c.n_expert_used
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

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        n_tokens = inp.n_tokens
        scale = 1.0 / math.sqrt(c.head_dim)
        for il, L in enumerate(self.layers):
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            cur = L.attn(cur, inp, cache, il, self.rope, scale, c.norm_eps, self.flash_attn)
            x = cur.add(x).named(f"attn_residual-{il}")                       # [n_embd, n_tokens]
            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            x = self._moe(L, cur, n_tokens, il).add(x).named(f"l_out-{il}")
        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        return self.output.mul_mat(x).named("result_output")                 # [n_vocab, n_outputs]
