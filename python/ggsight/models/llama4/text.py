"""Llama 4 text decoder: mixture of experts (sigmoid router, shared expert) on every
moe_step-th layer, chunked attention with RoPE + QK L2-norm, NoPE global layers with
attention-temperature tuning. Read top to bottom like the reference."""
from __future__ import annotations

import math

from ...cache import FULL, BatchInputs, CacheKind, chunked_kind
from ...ggml import DType, Tensor
from ...ggml.ops import ROPE_NORMAL
from ...nn import WeightBinder, attention, output_rows, rms_norm, with_image_rows
from ...nn.moe import experts_swiglu, sum_slots
from .config import Llama4Config


class Llama4Layer:
    def __init__(self, w: WeightBinder, il: int, c: Llama4Config):
        p = f"blk.{il}."
        q_width, kv_width = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        self.attn_norm = w(p + "attn_norm.weight", (c.n_embd,))
        self.wq = w(p + "attn_q.weight", (c.n_embd, q_width))
        self.wk = w(p + "attn_k.weight", (c.n_embd, kv_width))
        self.wv = w(p + "attn_v.weight", (c.n_embd, kv_width))
        self.wo = w(p + "attn_output.weight", (q_width, c.n_embd))
        self.ffn_norm = w(p + "ffn_norm.weight", (c.n_embd,))
        self.moe = c.is_moe(il)
        if self.moe:
            self.router = w(p + "ffn_gate_inp.weight", (c.n_embd, c.n_expert))
            self.gate_exps = w(p + "ffn_gate_exps.weight", (c.n_embd, c.n_ff_expert, c.n_expert))
            self.up_exps = w(p + "ffn_up_exps.weight", (c.n_embd, c.n_ff_expert, c.n_expert))
            self.down_exps = w(p + "ffn_down_exps.weight", (c.n_ff_expert, c.n_embd, c.n_expert))
            self.gate = w(p + "ffn_gate_shexp.weight", (c.n_embd, c.n_ff_expert))
            self.up = w(p + "ffn_up_shexp.weight", (c.n_embd, c.n_ff_expert))
            self.down = w(p + "ffn_down_shexp.weight", (c.n_ff_expert, c.n_embd))
        else:
            self.gate = w(p + "ffn_gate.weight", (c.n_embd, c.n_ff))
            self.up = w(p + "ffn_up.weight", (c.n_embd, c.n_ff))
            self.down = w(p + "ffn_down.weight", (c.n_ff, c.n_embd))


def _swiglu(gate: Tensor, up: Tensor, down: Tensor, x: Tensor) -> Tensor:
    return down.mul_mat(gate.mul_mat(x).swiglu_split(up.mul_mat(x)))


class Llama4Text:
    def __init__(self, gguf, weights, config: Llama4Config | None = None):
        self.config = c = config or Llama4Config.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        self.rope_freqs = w.optional("rope_freqs.weight", (c.n_rot // 2,))   # llama3-style rope scaling
        self.layers = [Llama4Layer(w, il, c) for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True

    def cache_kinds(self) -> list[CacheKind]:
        c = self.config
        rope_kind = chunked_kind(c.chunk) if c.chunk else FULL
        return [rope_kind if c.rope_layers[il] else FULL for il in range(c.n_layer)]

    def embed(self, tokens: Tensor) -> Tensor:
        return self.tok_embd.get_rows(tokens).named("inp_embd")

    def _moe(self, L: Llama4Layer, x: Tensor, n_tokens: int, il: int) -> Tensor:
        """Top-k experts weighted by sigmoid router scores (the weight scales the expert's
        input, as HF does), plus the always-on shared expert."""
        c = self.config
        k = c.n_expert_used
        logits = L.router.mul_mat(x).named(f"ffn_moe_logits-{il}")                 # [n_expert, n_tokens]
        chosen = logits.top_k(k)                                                    # [k, n_tokens] i32
        scores = logits.sigmoid().reshape(1, c.n_expert, n_tokens).get_rows(chosen)  # [1, k, n_tokens]
        xs = x.reshape(c.n_embd, 1, n_tokens)
        if k > 1:
            xs = xs.repeat(c.n_embd, k, n_tokens, 1)
        xs = xs.mul(scores)                                                         # [n_embd, k, n_tokens]
        routed = sum_slots(experts_swiglu(L.gate_exps, L.up_exps, L.down_exps, xs, chosen))  # [n_embd, n_tokens]
        return routed.add(_swiglu(L.gate, L.up, L.down, x)).named(f"ffn_moe_out-{il}")

    def _temperature(self, inp: BatchInputs) -> Tensor:
        """[1, 1, n_tokens]: log1p(floor((p + 1) / floor_scale)) * attn_scale + 1."""
        c = self.config
        t = inp.positions.cast(DType.F32).scale(1.0 / c.floor_scale, 1.0 / c.floor_scale).floor()
        return t.scale(1.0, 1.0).log().scale(c.attn_scale, 1.0).reshape(1, 1, inp.n_tokens)

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        x = with_image_rows(x, inp)
        n_tokens = inp.n_tokens
        temperature = self._temperature(inp) if c.temperature_tuning and not all(c.rope_layers) else None
        for il, L in enumerate(self.layers):
            kind = cache.kinds[il]
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            q = L.wq.mul_mat(cur).reshape(c.head_dim, c.n_head, n_tokens)
            k = L.wk.mul_mat(cur).reshape(c.head_dim, c.n_head_kv, n_tokens)
            v = L.wv.mul_mat(cur).reshape(c.head_dim, c.n_head_kv, n_tokens)
            if c.rope_layers[il]:
                q = q.rope(inp.positions, c.n_rot, ROPE_NORMAL, freq_base=c.rope_base, freq_factors=self.rope_freqs)
                k = k.rope(inp.positions, c.n_rot, ROPE_NORMAL, freq_base=c.rope_base, freq_factors=self.rope_freqs)
                if c.qk_l2_norm:
                    q, k = rms_norm(q, None, c.norm_eps), rms_norm(k, None, c.norm_eps)
            elif temperature is not None:
                q = q.mul(temperature)
            k_all, v_all = cache.layers[il].store(k, v, inp.cells[kind], inp.n_view[kind])
            attn = attention(q, k_all, v_all, inp.masks[kind], 1.0 / math.sqrt(c.head_dim),
                             flash=self.flash_attn).named(f"attn-{il}")
            x = L.wo.mul_mat(attn).add(x).named(f"attn_residual-{il}")
            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            ffn = self._moe(L, cur, n_tokens, il) if L.moe else _swiglu(L.gate, L.up, L.down, cur)
            x = ffn.add(x).named(f"l_out-{il}")
        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        return self.output.mul_mat(x).named("result_output")
