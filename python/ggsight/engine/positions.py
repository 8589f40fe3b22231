"""M-RoPE positions (Qwen2-VL family): text counts up one per token on all axes; an image's
tokens sit on a (row, col) grid that starts where the image starts, and the text after it
resumes past the grid's longer side. Plain numpy: the state of one sequence, no backend."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def mrope_positions(n_tokens: int, images: Sequence[tuple[int, int, int]]) -> tuple[np.ndarray, int]:
    """([4, n_tokens] int32 positions, offset of the positions after them).

    images: (first token index, grid rows, grid cols) per image, rows * cols tokens each.
    Token k of a text run gets (p, p, p); the image token at (r, c) gets (b, b + r, b + c) with
    b the position its first token would have had; text after it resumes at b + max(rows, cols).
    The 4th stream is unused by M-RoPE's sections and stays 0. A token at sequence index
    i >= n_tokens (generated later) sits at i + offset on every axis."""
    pos = np.zeros((4, n_tokens), np.int32)
    current, i = 0, 0
    for first, rows, cols in sorted(images):
        n_img = rows * cols
        if first < i or first + n_img > n_tokens:
            raise ValueError(f"image tokens at {first}..{first + n_img} overlap another image or the end")
        pos[:3, i:first] = current + np.arange(first - i)
        current += first - i
        r, c = np.divmod(np.arange(n_img), cols)
        pos[0, first:first + n_img] = current
        pos[1, first:first + n_img] = current + r
        pos[2, first:first + n_img] = current + c
        current += max(rows, cols)
        i = first + n_img
    pos[:3, i:] = current + np.arange(n_tokens - i)
    current += n_tokens - i
    return pos, current - n_tokens


def text_positions(start: int, n_tokens: int, offset: int) -> np.ndarray:
    """[4, n_tokens] positions of plain text at sequence indices start.. (after `offset`)."""
    pos = np.zeros((4, n_tokens), np.int32)
    pos[:3] = start + offset + np.arange(n_tokens)
    return pos
