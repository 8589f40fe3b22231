"""Gemma 2 text decoder graph (read top to bottom like the reference)."""
from __future__ import annotations

import math

from ...cache import FULL, BatchInputs, CacheKind, window_kind
from ...ggml import DType, Tensor
from ...nn import Rope, WeightBinder, attention, geglu, output_rows, rms_norm
from ...nn.decoder import ROPE_NEOX
from .config import Gemma2Config


class Gemma2Layer:
    def __init__(self, w: WeightBinder, il: int, c: Gemma2Config):
        p = f"blk.{il}."
        q_width, kv_width = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        self.attn_norm = w(p + "attn_norm.weight", (c.n_embd,))
        self.wq = w(p + "attn_q.weight", (c.n_embd, q_width))
        self.wk = w(p + "attn_k.weight", (c.n_embd, kv_width))
        self.wv = w(p + "attn_v.weight", (c.n_embd, kv_width))
        self.wo = w(p + "attn_output.weight", (q_width, c.n_embd))
        self.post_attn_norm = w(p + "post_attention_norm.weight", (c.n_embd,))
        self.ffn_norm = w(p + "ffn_norm.weight", (c.n_embd,))
        self.gate = w(p + "ffn_gate.weight", (c.n_embd, c.n_ff))
        self.up = w(p + "ffn_up.weight", (c.n_embd, c.n_ff))
        self.down = w(p + "ffn_down.weight", (c.n_ff, c.n_embd))
        self.post_ffn_norm = w(p + "post_ffw_norm.weight", (c.n_embd,))


class Gemma2Text:
    """Embedding scale, sandwich norms, gated GELU, sliding / global layers alternating,
    attention scores and final logits capped by tanh."""

    def __init__(self, gguf, weights, config: Gemma2Config | None = None):
        self.config = c = config or Gemma2Config.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        self.layers = [Gemma2Layer(w, il, c) for il in range(c.n_layer)]
        # global layers turn at rope_base, sliding-window ones at rope_base_swa
        self.ropes = [Rope(c.n_rot, ROPE_NEOX, c.rope_base if c.is_global(il) else c.rope_base_swa)
                      for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        # tied in every Gemma 2 (llama.cpp's converter drops lm_head); a file with its own head is read too
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True
        # f32 weights ask for exact maths: GELU in f32 ops rather than ggml's f16 table
        self.exact_gelu = all(L.gate.dtype == DType.F32 for L in self.layers)

    def cache_kinds(self) -> list[CacheKind]:
        c = self.config
        local = window_kind(c.sliding_window)
        return [FULL if c.is_global(il) else local for il in range(c.n_layer)]

    def embed(self, tokens: Tensor) -> Tensor:
        # [n_embd, n_tokens], scaled by sqrt(n_embd) as Gemma's embedding does
        return self.tok_embd.get_rows(tokens).scale(math.sqrt(self.config.n_embd)).named("inp_embd")

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        n_tokens = inp.n_tokens
        for il, L in enumerate(self.layers):
            kind, rope = cache.kinds[il], self.ropes[il]
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            q = L.wq.mul_mat(cur).reshape(c.head_dim, c.n_head, n_tokens)     # [head_dim, n_head, n_tokens]
            k = L.wk.mul_mat(cur).reshape(c.head_dim, c.n_head_kv, n_tokens)  # [head_dim, n_head_kv, n_tokens]
            v = L.wv.mul_mat(cur).reshape(c.head_dim, c.n_head_kv, n_tokens)
            q = rope(q, inp.positions).named(f"q_rope-{il}")
            k = rope(k, inp.positions).named(f"k_rope-{il}")

            k_all, v_all = cache.layers[il].store(k, v, inp.cells[kind], inp.n_view[kind])
            # scaled before attention, as llama.cpp does (the CPU's flash attention rounds q to
            # f16 for its dot products); the cap then bends the scaled scores:
            # cap * tanh(q.k * scale / cap), HF's order
            q = q.scale(c.attn_scale)
            attn = attention(q, k_all, v_all, inp.masks[kind], 1.0, softcap=c.attn_softcap,
                             flash=self.flash_attn).named(f"attn-{il}")
            cur = L.wo.mul_mat(attn)
            cur = rms_norm(cur, L.post_attn_norm, c.norm_eps).named(f"attn_post_norm-{il}")
            x = cur.add(x).named(f"attn_residual-{il}")                        # [n_embd, n_tokens]

            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            cur = geglu(L.gate.mul_mat(cur), L.up.mul_mat(cur), self.exact_gelu)  # gelu(tanh) gate * up
            cur = L.down.mul_mat(cur)
            cur = rms_norm(cur, L.post_ffn_norm, c.norm_eps).named(f"ffn_post_norm-{il}")
            x = cur.add(x).named(f"l_out-{il}")

        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        logits = self.output.mul_mat(x)                                      # [n_vocab, n_outputs]
        if c.final_logit_softcap:
            cap = c.final_logit_softcap
            logits = logits.scale(1.0 / cap).tanh().scale(cap)
        return logits.named("result_output")
