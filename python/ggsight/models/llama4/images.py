"""How Llama 4 puts images into a prompt, for the engine: tiles, separators, embeddings."""
from __future__ import annotations

import numpy as np

from ..glue import check_options, check_pairing
from .processor import Llama4ImageConfig, preprocess
from .vision import Llama4Vision


class TiledImage(list):
    """An image's tiles in prompt order (row-major tiles, then the global one) + the grid."""

    def __init__(self, tiles, aspect: tuple[int, int]):
        super().__init__(tiles)
        self.aspect = aspect


class Llama4Images:
    """The layout HF's Llama4Processor writes: <|image_start|>, per tile row its tiles' patch
    tokens with <|tile_x_separator|> between tiles and <|tile_y_separator|> at the row end,
    then <|image|> and the global tile's tokens, then <|image_end|>; a one-tile image has only
    the <|image|> part. Image tokens are causal; each tile's run may split across batches."""

    marker = "<|image|>"
    bidirectional = False
    largest_group = 0
    image_token = "<|patch|>"

    def __init__(self, mmproj_gguf, weights, tokenizer, n_embd_text: int | None = None, **image_options):
        self.vision = Llama4Vision(mmproj_gguf, weights)
        check_pairing(mmproj_gguf, self.vision.config.n_embd_text, n_embd_text, tokenizer,
                      ("<|image_start|>", "<|image_end|>", "<|image|>", "<|tile_x_separator|>",
                       "<|tile_y_separator|>", self.image_token), "Llama 4")
        check_options(image_options, Llama4ImageConfig, "Llama 4")
        self.image_config = Llama4ImageConfig.from_gguf(mmproj_gguf, **image_options)
        self.image_token_id = tokenizer.token_id(self.image_token)
        self.n_tokens = self.vision.config.tokens_per_tile

    def tokens_of(self, view) -> int:
        return self.n_tokens

    def grid(self, view) -> None:
        return None

    def layout(self, views: TiledImage) -> str:
        rows, cols = views.aspect
        patches = self.image_token * self.n_tokens
        out = "<|image_start|>"
        if rows * cols > 1:
            for _ in range(rows):
                out += "<|tile_x_separator|>".join([patches] * cols) + "<|tile_y_separator|>"
        return out + "<|image|>" + patches + "<|image_end|>"

    def pixels(self, image, max_tokens: int | None = None) -> TiledImage:
        if max_tokens is not None:
            raise ValueError(f"Llama 4 gives every tile {self.n_tokens} tokens: max_image_tokens does not apply "
                             "(set image_options={'max_patches': ...} at load for fewer tiles)")
        tiles, aspect = preprocess(image, self.image_config)
        return TiledImage(list(np.asarray(tiles)), tuple(aspect))

    def largest_view(self) -> np.ndarray:
        """[3, S, S] zeros: the tower encodes one tile at a time, so one tile is the most costly
        encode, which the memory planner sizes."""
        size = self.vision.config.tile_size
        return np.zeros((3, size, size), np.float32)

    def embed(self, sched, tile: np.ndarray) -> np.ndarray:
        """[3, S, S] -> [tokens_per_tile, n_embd_text]"""
        return self.vision.encode(sched, tile)
