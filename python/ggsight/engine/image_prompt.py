"""A prompt with images -> token ids and image chunks: the model's glue lays each image out in
text, its embeddings come from the image cache or the vision tower. No per-model branches here:
the glue (models/<arch>/images.py) decides layout, token counts and grids."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError


def content_key(pixels: np.ndarray) -> str:
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


@dataclass(frozen=True, eq=False)
class ImageChunk:
    """One image view's run of tokens in a prompt, with everything the engine needs about it."""
    first: int                          # index of its first token in the prompt
    embeddings: np.ndarray              # [n_tokens, n_embd_text] what the tower made of it
    key: str                            # content hash: the image-cache key, and its tokens' prefix-reuse key
    grid: tuple[int, int] | None        # (rows, cols) of its tokens (M-RoPE models), None for 1-D positions

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def end(self) -> int:
        return self.first + len(self.embeddings)


def expand_images(glue, text: str, images: list, to_ids, cache, sched,
                  max_image_tokens: int | None = None) -> tuple[list[int], list[ImageChunk], int]:
    """(token ids, image chunks in prompt order, tower runs).

    `text` marks each image with glue.marker (all images first when it marks none); `to_ids`
    tokenizes."""
    if glue.marker not in text:
        text = glue.marker * len(images) + text
    pieces = text.split(glue.marker)
    if len(pieces) - 1 != len(images):
        raise InvalidArgumentError(f"the prompt marks {len(pieces) - 1} image(s) but {len(images)} were given")
    views = [glue.pixels(image, max_tokens=max_image_tokens) for image in images]   # an image (+ crops)
    ids = to_ids(pieces[0] + "".join(glue.layout(v) + piece for v, piece in zip(views, pieces[1:])))
    flat = [p for v in views for p in v]
    counts = [glue.tokens_of(p) for p in flat]
    where = np.flatnonzero(np.asarray(ids) == glue.image_token_id)
    if len(where) != sum(counts):  # e.g. image-token text typed into the prompt
        raise InvalidArgumentError(f"the prompt holds {len(where)} image tokens; {len(images)} image(s) "
                                   f"need {sum(counts)}: remove {glue.image_token!r} from the text")
    starts = [int(where[k]) for k in np.cumsum([0] + counts[:-1])]
    keys = [content_key(p) for p in flat]
    chunks, encoded = [], 0
    with cache.in_use(keys):   # a prompt's own images are never evicted while it is built
        for first, pixels, key in zip(starts, flat, keys):
            emb = cache.get(key)
            if emb is None:
                emb = glue.embed(sched, pixels)
                encoded += 1
                cache.put(key, emb)
            grid = glue.grid(pixels)
            chunks.append(ImageChunk(first, emb, key, None if grid is None else (int(grid[0]), int(grid[1]))))
    return ids, chunks, encoded
