"""Qwen2.5-VL text decoder (Qwen2 blocks with M-RoPE), read top to bottom like the reference."""
from __future__ import annotations

import math

from ...cache import FULL, BatchInputs, CacheKind
from ...ggml import Tensor
from ...ggml.ops import ROPE_MROPE
from ...nn import WeightBinder, attention, output_rows, rms_norm, with_image_rows
from .config import QwenVLConfig


class QwenVLLayer:
    def __init__(self, w: WeightBinder, il: int, c: QwenVLConfig):
        p = f"blk.{il}."
        q_width, kv_width = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        self.attn_norm = w(p + "attn_norm.weight", (c.n_embd,))
        self.wq, self.bq = w(p + "attn_q.weight", (c.n_embd, q_width)), w(p + "attn_q.bias", (q_width,))
        self.wk, self.bk = w(p + "attn_k.weight", (c.n_embd, kv_width)), w(p + "attn_k.bias", (kv_width,))
        self.wv, self.bv = w(p + "attn_v.weight", (c.n_embd, kv_width)), w(p + "attn_v.bias", (kv_width,))
        self.wo = w(p + "attn_output.weight", (q_width, c.n_embd))
        self.ffn_norm = w(p + "ffn_norm.weight", (c.n_embd,))
        self.gate = w(p + "ffn_gate.weight", (c.n_embd, c.n_ff))
        self.up = w(p + "ffn_up.weight", (c.n_embd, c.n_ff))
        self.down = w(p + "ffn_down.weight", (c.n_ff, c.n_embd))


class QwenVLText:
    """Causal everywhere (image tokens included); positions are (t, h, w) triples per token."""

    def __init__(self, gguf, weights, config: QwenVLConfig | None = None):
        self.config = c = config or QwenVLConfig.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        self.layers = [QwenVLLayer(w, il, c) for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd  # tied in small sizes
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True
        # the engine gives this model 4 position streams per token (M-RoPE), not one
        self.rope_sections = c.rope_sections

    def cache_kinds(self) -> list[CacheKind]:
        return [FULL] * self.config.n_layer

    def embed(self, tokens: Tensor) -> Tensor:
        return self.tok_embd.get_rows(tokens).named("inp_embd")           # [n_embd, n_tokens]

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        x = with_image_rows(x, inp)
        n_tokens = inp.n_tokens
        pos = inp.rope_positions                                            # [4 * n_tokens] i32
        for il, L in enumerate(self.layers):
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            q = L.wq.mul_mat(cur).add(L.bq).reshape(c.head_dim, c.n_head, n_tokens)
            k = L.wk.mul_mat(cur).add(L.bk).reshape(c.head_dim, c.n_head_kv, n_tokens)
            v = L.wv.mul_mat(cur).add(L.bv).reshape(c.head_dim, c.n_head_kv, n_tokens)
            q = q.rope_multi(pos, c.head_dim, c.rope_sections, ROPE_MROPE, freq_base=c.rope_base).named(f"q_rope-{il}")
            k = k.rope_multi(pos, c.head_dim, c.rope_sections, ROPE_MROPE, freq_base=c.rope_base).named(f"k_rope-{il}")
            k_all, v_all = cache.layers[il].store(k, v, inp.cells[FULL], inp.n_view[FULL])
            attn = attention(q, k_all, v_all, inp.masks[FULL], 1.0 / math.sqrt(c.head_dim),
                             flash=self.flash_attn).named(f"attn-{il}")
            x = L.wo.mul_mat(attn).add(x).named(f"attn_residual-{il}")      # [n_embd, n_tokens]
            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            cur = L.gate.mul_mat(cur).swiglu_split(L.up.mul_mat(cur))        # silu(gate) * up
            x = L.down.mul_mat(cur).add(x).named(f"l_out-{il}")
        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        return self.output.mul_mat(x).named("result_output")               # [n_vocab, n_outputs]
