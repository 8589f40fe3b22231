"""How Mistral 3 (Pixtral tower) puts images into a prompt, for the engine: rows of [IMG] tokens
ended by [IMG_BREAK], the last row by [IMG_END]; embeddings from the tower."""
from __future__ import annotations

import numpy as np

from ...ggml import Context, DType
from ..glue import check_options, check_pairing
from .processor import PixtralImageConfig, largest_size, preprocess
from .vision import PixtralVision

IMG, IMG_BREAK, IMG_END = "[IMG]", "[IMG_BREAK]", "[IMG_END]"


class Mistral3Images:
    """The layout HF's PixtralProcessor writes for each image: per row of tokens, `cols` x [IMG]
    then [IMG_BREAK], the last row's [IMG_BREAK] replaced by [IMG_END]. HF embeds [IMG_BREAK] as
    the text token it is; here an image's embeddings run from its first [IMG] to its last, the
    [IMG_BREAK] rows in between being that token's embedding (the mmproj's
    v.token_embd.img_break, or the text model's table where the file lacks it, as files from
    llama.cpp's converter do). Image tokens are causal: an image may split across micro-batches
    anywhere, rows included, with positions unchanged. image_options: PixtralImageConfig fields
    (longest_edge, ...) or max_tokens, a budget of [IMG] tokens per image."""

    marker = IMG
    bidirectional = False
    largest_group = 0
    image_token = IMG

    def __init__(self, mmproj_gguf, weights, tokenizer, n_embd_text: int | None = None, **image_options):
        self.vision = PixtralVision(mmproj_gguf, weights)
        check_pairing(mmproj_gguf, self.vision.config.n_embd_text, n_embd_text, tokenizer,
                      (IMG, IMG_BREAK, IMG_END), "Mistral 3 / Pixtral")
        check_options(image_options, PixtralImageConfig, "Mistral 3 / Pixtral", extra=("max_tokens",))
        self.max_tokens = image_options.pop("max_tokens", None)
        self.image_config = PixtralImageConfig.from_gguf(mmproj_gguf, self.vision.config.merge, **image_options)
        self.image_token_id = tokenizer.token_id(IMG)
        self.break_id = tokenizer.token_id(IMG_BREAK)
        self._break_row = None if self.vision.img_break is None else self.vision.img_break.numpy().reshape(-1)
        self._text_model = None

    def bind_text_model(self, net) -> None:
        """The text model whose token table gives [IMG_BREAK]'s embedding when the mmproj has none."""
        self._text_model = net

    def rows_cols(self, view: np.ndarray) -> tuple[int, int]:
        """(rows, cols) of the image's [IMG] tokens."""
        f = self.image_config.factor
        return view.shape[1] // f, view.shape[2] // f

    def grid(self, view: np.ndarray) -> None:
        """None: 1-D positions, one per token, [IMG_BREAK]s included."""
        return None

    def tokens_of(self, view: np.ndarray) -> int:
        """[IMG] tokens of the image (embed() returns those plus one [IMG_BREAK] per row but the last)."""
        rows, cols = self.rows_cols(view)
        return rows * cols

    def layout(self, views) -> str:
        out = ""
        for view in views:
            rows, cols = self.rows_cols(view)
            out += (IMG * cols + IMG_BREAK) * (rows - 1) + IMG * cols + IMG_END
        return out

    def pixels(self, image, max_tokens: int | None = None) -> list:
        """One view per image: [3, H, W], sides multiples of patch x merge (max_tokens: this
        call's budget of [IMG] tokens instead of the loaded one)."""
        budget = self.max_tokens if max_tokens is None else max_tokens
        return [preprocess(image, self.image_config, budget)]

    def largest_view(self) -> np.ndarray:
        """[3, L, L] zeros, L the longest edge rounded up to whole tokens: the most costly encode."""
        height, width = largest_size(self.image_config)
        return np.zeros((3, height, width), np.float32)

    def embed(self, sched, pixels: np.ndarray) -> np.ndarray | None:
        """[3, H, W] -> [rows * (cols + 1) - 1, n_embd_text]: each row's tokens, an [IMG_BREAK]
        row after every row but the last."""
        tokens = self.vision.encode(sched, pixels)
        if tokens is None:   # the memory planner reserves, nothing runs
            return None
        rows, cols = self.rows_cols(pixels)
        n_embd = tokens.shape[-1]
        out = np.empty((rows, cols + 1, n_embd), np.float32)
        out[:, :cols] = tokens.reshape(rows, cols, n_embd)
        out[:, cols] = self._img_break(sched)
        return out.reshape(rows * (cols + 1), n_embd)[:-1]

    def _img_break(self, sched) -> np.ndarray:
        if self._break_row is None:
            if self._text_model is None:
                raise ValueError(f"{self.vision.binder.source} has no v.token_embd.img_break, and no text model "
                                 "was bound to take [IMG_BREAK]'s embedding from")
            ctx = Context(16)
            with ctx:
                tok = ctx.input("img_break_id", (1,), DType.I32)
                row = self._text_model.embed(tok)
            self._break_row, = sched.run(ctx.graph(row), {tok: np.array([self.break_id], np.int32)})
            self._break_row = np.asarray(self._break_row, np.float32).reshape(-1)
        return self._break_row
