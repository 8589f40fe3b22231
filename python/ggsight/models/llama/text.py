"""Llama text decoder (Llama 2 / 3.x, Mistral): pre-norm GQA attention with adjacent-pair rope
(llama3 frequency factors when the file has rope_freqs.weight), SwiGLU, an optional sliding
window on every layer. Read top to bottom like the reference."""
from __future__ import annotations

import math

from ...cache import FULL, BatchInputs, CacheKind, window_kind
from ...ggml import Tensor
from ...nn import DecoderLayer, Rope, WeightBinder, output_rows, rms_norm, with_image_rows
from ...nn.decoder import ROPE_NORMAL
from .config import LlamaConfig


class LlamaText:
    def __init__(self, gguf, weights, config: LlamaConfig | None = None):
        self.config = c = config or LlamaConfig.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        # llama3 scaling: one divisor per rotated pair (llama.cpp's converter computes them)
        self.rope = Rope(c.n_rot, ROPE_NORMAL, c.rope_base, c.rope_freq_scale,
                         w.optional("rope_freqs.weight", (c.n_rot // 2,)))
        self.layers = [DecoderLayer(w, il, c) for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd   # tied: Llama 3.2 1B / 3B
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True

    def cache_kinds(self) -> list[CacheKind]:
        c = self.config
        return [window_kind(c.sliding_window) if c.sliding_window else FULL] * c.n_layer

    def embed(self, tokens: Tensor) -> Tensor:
        return self.tok_embd.get_rows(tokens).named("inp_embd")              # [n_embd, n_tokens]

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        x = with_image_rows(x, inp)      # Mistral 3 / LLaVA put image rows into this decoder
        scale = 1.0 / math.sqrt(c.head_dim)
        for il, L in enumerate(self.layers):
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            cur = L.attn(cur, inp, cache, il, self.rope, scale, c.norm_eps, self.flash_attn)
            x = cur.add(x).named(f"attn_residual-{il}")                        # [n_embd, n_tokens]
            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            x = L.ffn(cur).add(x).named(f"l_out-{il}")
        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        return self.output.mul_mat(x).named("result_output")                  # [n_vocab, n_outputs]
