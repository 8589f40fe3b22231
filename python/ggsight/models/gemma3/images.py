"""How Gemma 3 puts images into a prompt, for the engine: marker, expansion, embeddings."""
from __future__ import annotations

import numpy as np

from .processor import Gemma3ImageConfig, preprocess
from .vision import Gemma3Vision


class Gemma3Images:
    """The mmproj tower plus the prompt layout HF's Gemma3Processor writes:
    each `<start_of_image>` becomes "\\n\\n<start_of_image>" + N x <image_soft_token> +
    "<end_of_image>\\n\\n"; the N tokens attend to each other in both directions."""

    marker = "<start_of_image>"

    def __init__(self, mmproj_gguf, weights, tokenizer, n_embd_text: int | None = None, **image_options):
        self.vision = Gemma3Vision(mmproj_gguf, weights)
        width = self.vision.config.n_embd_text
        if n_embd_text is not None and width != n_embd_text:
            raise ValueError(f"{mmproj_gguf.path}: the projector makes {width}-wide embeddings but the text "
                             f"model is {n_embd_text} wide: this mmproj belongs to another model")
        self.image_config = Gemma3ImageConfig.from_gguf(mmproj_gguf, **image_options)
        self.image_token = "<image_soft_token>"
        self.image_token_id = tokenizer.token_id(self.image_token)
        for name in (self.marker, "<end_of_image>", self.image_token):
            if tokenizer.token_id(name) is None:
                raise ValueError(f"the text model's vocabulary has no {name} token: not a Gemma 3 vision model")
        self.n_tokens = self.vision.config.n_tokens

    def expansion(self) -> str:
        return f"\n\n{self.marker}{self.image_token * self.n_tokens}<end_of_image>\n\n"

    def pixels(self, image) -> np.ndarray:
        return preprocess(image, self.image_config)[0]  # pan-and-scan crops: a later option

    def embed(self, sched, pixels: np.ndarray) -> np.ndarray:
        """[3, size, size] -> [n_tokens, n_embd_text]"""
        return self.vision.encode(sched, pixels)
