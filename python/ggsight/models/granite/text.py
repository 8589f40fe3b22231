"""Granite (3.x) text decoder: Llama's blocks (adjacent-pair rope after the converter's
permutation) with IBM's four multipliers: scaled embeddings, scaled block outputs before each
residual add, a fixed attention scale, logits divided by logits_scaling. Read top to bottom
like the reference."""
from __future__ import annotations

from ...ggml import Tensor
from ...nn import DenseDecoder
from ...nn.decoder import ROPE_NORMAL
from .config import GraniteConfig


class GraniteText(DenseDecoder):
    config_class = GraniteConfig
    rope_mode = ROPE_NORMAL
    rope_freq_factors = True

    def embed(self, tokens: Tensor) -> Tensor:
        # [n_embd, n_tokens], times embedding_multiplier as HF's GraniteModel does; Granite
        # Vision's image rows go in unscaled, as HF's masked_scatter
        return self.tok_embd.get_rows(tokens).scale(self.config.embedding_scale).named("inp_embd")

    def attention_scale(self) -> float:
        return self.config.attention_scale

    def residual_scale(self) -> float:
        return self.config.residual_scale

    def logit_scale(self) -> float:
        return self.config.logit_scale
