"""How Gemma 3 puts images into a prompt, for the engine: marker, expansion, embeddings."""
from __future__ import annotations

import numpy as np

from ..glue import check_options, check_pairing
from .processor import Gemma3ImageConfig, preprocess
from .vision import Gemma3Vision


class Gemma3Images:
    """The mmproj tower plus the prompt layout HF's Gemma3Processor writes:
    each `<start_of_image>` becomes "\\n\\n<start_of_image>" + N x <image_soft_token> +
    "<end_of_image>\\n\\n"; the N tokens attend to each other in both directions.
    image_options: Gemma3ImageConfig fields, e.g. pan_and_scan=True."""

    marker = "<start_of_image>"
    bidirectional = True   # an image's tokens see each other: never split across batches

    def __init__(self, mmproj_gguf, weights, tokenizer, n_embd_text: int | None = None, **image_options):
        self.vision = Gemma3Vision(mmproj_gguf, weights)
        self.image_token = "<image_soft_token>"
        check_pairing(mmproj_gguf, self.vision.config.n_embd_text, n_embd_text, tokenizer,
                      (self.marker, "<end_of_image>", self.image_token), "Gemma 3")
        check_options(image_options, Gemma3ImageConfig, "Gemma 3")
        self.image_config = Gemma3ImageConfig.from_gguf(mmproj_gguf, **image_options)
        self.image_token_id = tokenizer.token_id(self.image_token)
        self.n_tokens = self.vision.config.n_tokens

    def expansion(self, n_views: int = 1) -> str:
        """The text one image becomes; with pan-and-scan crops (n_views > 1), HF's sentence
        around the original and its crops."""
        one = f"\n\n{self.marker}{self.image_token * self.n_tokens}<end_of_image>\n\n"
        if n_views == 1:
            return one
        return (f"Here is the original image {one} and here are some crops to help you see better "
                + " ".join([one] * (n_views - 1)))

    def layout(self, views) -> str:
        return self.expansion(len(views))

    def tokens_of(self, view) -> int:
        return self.n_tokens

    @property
    def largest_group(self) -> int:
        """Tokens that must share one batch."""
        return self.n_tokens

    def grid(self, view) -> None:
        return None   # 1-D positions: no token grid

    def pixels(self, image, max_tokens: int | None = None) -> np.ndarray:
        """[n_views, 3, size, size]: the image, then its pan-and-scan crops when enabled."""
        if max_tokens is not None:
            raise ValueError(f"Gemma 3 gives every image {self.n_tokens} tokens: max_image_tokens does not apply")
        return preprocess(image, self.image_config)

    def largest_view(self) -> np.ndarray:
        """[3, size, size] zeros: every view (the image, each crop) is encoded at the tower's
        fixed size, so this is the most costly encode, which the memory planner sizes."""
        size = self.vision.config.image_size
        return np.zeros((3, size, size), np.float32)

    def embed(self, sched, pixels: np.ndarray) -> np.ndarray:
        """[3, size, size] -> [n_tokens, n_embd_text]"""
        return self.vision.encode(sched, pixels)
