"""Qwen3 text decoder: Llama's blocks with per-head QK RMSNorm before NeoX (half-split) rope and
no biases. Read top to bottom like the reference."""
from __future__ import annotations

import math

from ...cache import FULL, BatchInputs, CacheKind
from ...ggml import Tensor
from ...nn import DecoderLayer, Rope, WeightBinder, output_rows, rms_norm, with_image_rows
from ...nn.decoder import ROPE_NEOX
from .config import Qwen3Config


class Qwen3Text:
    def __init__(self, gguf, weights, config: Qwen3Config | None = None):
        self.config = c = config or Qwen3Config.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        self.rope = Rope(c.n_rot, ROPE_NEOX, c.rope_base, c.rope_freq_scale)
        self.layers = [DecoderLayer(w, il, c, qk_norm=True) for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd   # tied up to 4B
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True

    def cache_kinds(self) -> list[CacheKind]:
        return [FULL] * self.config.n_layer

    def embed(self, tokens: Tensor) -> Tensor:
        return self.tok_embd.get_rows(tokens).named("inp_embd")              # [n_embd, n_tokens]

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        x = with_image_rows(x, inp)
        scale = 1.0 / math.sqrt(c.head_dim)
        for il, L in enumerate(self.layers):
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            cur = L.attn(cur, inp, cache, il, self.rope, scale, c.norm_eps, self.flash_attn)
            x = cur.add(x).named(f"attn_residual-{il}")                        # [n_embd, n_tokens]
            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            x = L.ffn(cur).add(x).named(f"l_out-{il}")
        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        return self.output.mul_mat(x).named("result_output")                  # [n_vocab, n_outputs]
