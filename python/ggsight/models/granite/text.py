"""Granite (3.x) text decoder: Llama's blocks (adjacent-pair rope after the converter's
permutation) with IBM's four multipliers: scaled embeddings, scaled block outputs before each
residual add, a fixed attention scale, logits divided by logits_scaling. Read top to bottom
like the reference."""
from __future__ import annotations

from ...cache import FULL, BatchInputs, CacheKind
from ...ggml import Tensor
from ...nn import DecoderLayer, Rope, WeightBinder, output_rows, rms_norm, with_image_rows
from ...nn.decoder import ROPE_NORMAL
from .config import GraniteConfig


class GraniteText:
    def __init__(self, gguf, weights, config: GraniteConfig | None = None):
        self.config = c = config or GraniteConfig.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        self.rope = Rope(c.n_rot, ROPE_NORMAL, c.rope_base, c.rope_freq_scale,
                         w.optional("rope_freqs.weight", (c.n_rot // 2,)))
        self.layers = [DecoderLayer(w, il, c) for il in range(c.n_layer)]
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd   # tied in Granite 3.x
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True

    def cache_kinds(self) -> list[CacheKind]:
        return [FULL] * self.config.n_layer

    def embed(self, tokens: Tensor) -> Tensor:
        # [n_embd, n_tokens], times embedding_multiplier as HF's GraniteModel does
        return self.tok_embd.get_rows(tokens).scale(self.config.embedding_scale).named("inp_embd")

    def forward(self, inp: BatchInputs, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        x = with_image_rows(x, inp)   # Granite Vision's rows go in unscaled, as HF's masked_scatter
        for il, L in enumerate(self.layers):
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            cur = L.attn(cur, inp, cache, il, self.rope, c.attention_scale, c.norm_eps, self.flash_attn)
            x = cur.scale(c.residual_scale).add(x).named(f"attn_residual-{il}")   # [n_embd, n_tokens]
            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            x = L.ffn(cur).scale(c.residual_scale).add(x).named(f"l_out-{il}")
        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        logits = self.output.mul_mat(x)                                         # [n_vocab, n_outputs]
        return logits.scale(1.0 / c.logit_scale).named("result_output")
