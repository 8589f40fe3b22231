"""Gemma 3 text decoder graph (read top to bottom like the reference)."""
from __future__ import annotations

import math

from ...cache import FULL, BatchInputs, CacheKind, window_kind
from ...ggml import DType, Tensor
from ...ggml.ops import ROPE_NEOX
from ...nn import WeightBinder, attention, geglu, output_rows, rms_norm, with_image_rows
from .config import Gemma3Config


class Gemma3Layer:
    def __init__(self, w: WeightBinder, il: int, c, qk_norm: bool = True):
        p = f"blk.{il}."
        q_width, kv_width = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        self.attn_norm = w(p + "attn_norm.weight", (c.n_embd,))
        self.wq = w(p + "attn_q.weight", (c.n_embd, q_width))
        self.wk = w(p + "attn_k.weight", (c.n_embd, kv_width))
        self.wv = w(p + "attn_v.weight", (c.n_embd, kv_width))
        self.q_norm = w(p + "attn_q_norm.weight", (c.head_dim,)) if qk_norm else None
        self.k_norm = w(p + "attn_k_norm.weight", (c.head_dim,)) if qk_norm else None
        self.wo = w(p + "attn_output.weight", (q_width, c.n_embd))
        self.post_attn_norm = w(p + "post_attention_norm.weight", (c.n_embd,))
        self.ffn_norm = w(p + "ffn_norm.weight", (c.n_embd,))
        self.gate = w(p + "ffn_gate.weight", (c.n_embd, c.n_ff))
        self.up = w(p + "ffn_up.weight", (c.n_embd, c.n_ff))
        self.down = w(p + "ffn_down.weight", (c.n_ff, c.n_embd))
        self.post_ffn_norm = w(p + "post_ffw_norm.weight", (c.n_embd,))


class Gemma3Text:
    """Embedding scale, QK-norm, sandwich norms, gated GELU, 5 local : 1 global layers. Gemma 2
    (models/gemma2) is this graph with its differences set below."""

    config_class = Gemma3Config
    qk_norm = True

    def __init__(self, gguf, weights, config=None):
        self.config = c = config or self.config_class.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        self.layers = [Gemma3Layer(w, il, c, self.qk_norm) for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd  # tied in Gemma 3
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True
        # f32 weights ask for exact maths: GELU in f32 ops rather than ggml's f16 table
        self.exact_gelu = all(L.gate.dtype == DType.F32 for L in self.layers)

    def cache_kinds(self) -> list[CacheKind]:
        c = self.config
        local = window_kind(c.sliding_window)
        return [FULL if c.is_global(il) else local for il in range(c.n_layer)]

    def rope(self, il: int) -> tuple[int, float, float]:
        """Layer il's rotated dims, frequency base and frequency scale: the global layers' base
        (and linear scaling) or the local ones'."""
        c = self.config
        if c.is_global(il):
            return c.head_dim, c.rope_base_global, c.rope_freq_scale
        return c.head_dim, c.rope_base_local, 1.0

    def attn_softcap(self) -> float:
        return 0.0   # Gemma 3 dropped Gemma 2's cap of the attention scores

    def embed(self, tokens: Tensor) -> Tensor:
        # [n_embd, n_tokens], scaled by sqrt(n_embd) as Gemma's embedding does
        return self.tok_embd.get_rows(tokens).scale(math.sqrt(self.config.n_embd)).named("inp_embd")

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        x = with_image_rows(x, inp)
        n_tokens, softcap = inp.n_tokens, self.attn_softcap()
        for il, L in enumerate(self.layers):
            kind = cache.kinds[il]
            n_rot, base, scale = self.rope(il)

            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            q = L.wq.mul_mat(cur).reshape(c.head_dim, c.n_head, n_tokens)     # [head_dim, n_head, n_tokens]
            k = L.wk.mul_mat(cur).reshape(c.head_dim, c.n_head_kv, n_tokens)  # [head_dim, n_head_kv, n_tokens]
            v = L.wv.mul_mat(cur).reshape(c.head_dim, c.n_head_kv, n_tokens)
            if L.q_norm is not None:
                q = rms_norm(q, L.q_norm, c.norm_eps).named(f"q_norm-{il}")
                k = rms_norm(k, L.k_norm, c.norm_eps).named(f"k_norm-{il}")
            q = q.rope(inp.positions, n_rot, ROPE_NEOX, freq_base=base, freq_scale=scale).named(f"q_rope-{il}")
            k = k.rope(inp.positions, n_rot, ROPE_NEOX, freq_base=base, freq_scale=scale).named(f"k_rope-{il}")

            k_all, v_all = cache.layers[il].store(k, v, inp.cells[kind], inp.n_view[kind])
            # scaled before attention, as llama.cpp does: the CPU's flash attention rounds q to
            # f16 for its dot products, so where the scale is applied shows in the logits; a
            # softcap then bends the scaled scores: cap * tanh(q.k * scale / cap), HF's order
            q = q.scale(c.attn_scale)
            attn = attention(q, k_all, v_all, inp.masks[kind], 1.0, softcap=softcap,
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
