"""How Qwen2.5-VL puts images into a prompt, for the engine: marker, layout, embeddings."""
from __future__ import annotations

import numpy as np

from ..glue import check_options, check_pairing
from .processor import QwenImageConfig, largest_size, preprocess
from .vision import QwenVision


class QwenVLImages:
    """The mmproj tower plus the layout HF's Qwen2_5_VLProcessor writes: each image becomes
    <|vision_start|> + N x <|image_pad|> + <|vision_end|>, N = (H / 28) * (W / 28) for the
    resized image. Image tokens are causal (they may split across batches) and carry (t, h, w)
    positions on their grid. image_options: QwenImageConfig fields (min_pixels, max_pixels) or
    max_tokens, a budget of image tokens per image."""

    marker = "<|vision_start|><|image_pad|><|vision_end|>"
    bidirectional = False
    largest_group = 0
    image_token = "<|image_pad|>"

    def __init__(self, mmproj_gguf, weights, tokenizer, n_embd_text: int | None = None, **image_options):
        self.vision = QwenVision(mmproj_gguf, weights)
        check_pairing(mmproj_gguf, self.vision.config.n_embd_text, n_embd_text, tokenizer,
                      ("<|vision_start|>", "<|vision_end|>", self.image_token), "Qwen2.5-VL")
        check_options(image_options, QwenImageConfig, "Qwen2.5-VL", extra=("max_tokens",))
        budget = image_options.pop("max_tokens", None)
        cfg = QwenImageConfig.from_gguf(mmproj_gguf, merge_size=self.vision.config.merge, **image_options)
        self.image_config = cfg.with_token_budget(int(budget)) if budget is not None else cfg
        self.image_token_id = tokenizer.token_id(self.image_token)

    def _side(self) -> int:
        return self.image_config.patch_size * self.image_config.merge_size

    def grid(self, view: np.ndarray) -> tuple[int, int]:
        """(rows, cols) of the image's tokens."""
        return view.shape[1] // self._side(), view.shape[2] // self._side()

    def tokens_of(self, view: np.ndarray) -> int:
        rows, cols = self.grid(view)
        return rows * cols

    def layout(self, views) -> str:
        return "".join(f"<|vision_start|>{self.image_token * self.tokens_of(v)}<|vision_end|>" for v in views)

    def pixels(self, image, max_tokens: int | None = None) -> list:
        """One view per image: [3, H, W] resized to multiples of 28 within the pixel budget
        (max_tokens: this call's budget instead of the loaded one)."""
        cfg = self.image_config if max_tokens is None else self.image_config.with_token_budget(max_tokens)
        return [preprocess(image, cfg)[0]]

    def largest_view(self) -> np.ndarray:
        """[3, H, W] zeros of the largest image the loaded pixel budget allows: the most costly
        encode, which the memory planner sizes (a larger per-call max_image_tokens can exceed it)."""
        height, width = largest_size(self.image_config)
        return np.zeros((3, height, width), np.float32)

    def embed(self, sched, pixels: np.ndarray) -> np.ndarray:
        """[3, H, W] -> [n_tokens, n_embd_text]"""
        return self.vision.encode(sched, pixels)
