"""Where each patch goes in Qwen2.5-VL's vision tower: HF's merge-block order, its window
order, and back. Pure numpy bookkeeping (testable without a backend)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PatchLayout:
    order: np.ndarray      # [n_patches] raster index (y * grid_w + x) of the patch at each tower position
    rows: np.ndarray       # [n_patches] patch row (y) at each tower position (2D rope)
    cols: np.ndarray       # [n_patches] patch column (x)
    window: np.ndarray     # [n_patches] window id at each tower position (windowed layers)
    restore: np.ndarray    # [n_merged] tower position of merged token k (row-major over the merged grid)

    @property
    def n_windows(self) -> int:
        return int(self.window.max()) + 1 if len(self.window) else 0


def patch_layout(grid_h: int, grid_w: int, merge: int, window_merged: int) -> PatchLayout:
    """grid_h x grid_w patches; merge x merge patches make one token; windows of
    window_merged x window_merged tokens (HF: window_size // merge // patch_size).

    HF first lays patches out merge-block by merge-block (each block's patches contiguous),
    then reorders the blocks window by window (the last windows of a row or column are
    smaller), runs the tower, merges each block and puts the tokens back in block order."""
    if grid_h % merge or grid_w % merge:
        raise ValueError(f"a {grid_h}x{grid_w} patch grid does not divide into {merge}x{merge} merge blocks")
    bh, bw = grid_h // merge, grid_w // merge
    # block-major patch order: [bh, merge, bw, merge] -> [bh, bw, merge, merge]
    y, x = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    by_block = lambda a: a.reshape(bh, merge, bw, merge).transpose(0, 2, 1, 3).reshape(bh * bw, merge * merge)
    ys, xs = by_block(y), by_block(x)                                  # [n_blocks, merge^2]
    # blocks in window order, windows row-major, blocks row-major inside a window
    win_w = -(-bw // window_merged)
    block_r, block_c = np.divmod(np.arange(bh * bw), bw)
    win_of_block = (block_r // window_merged) * win_w + block_c // window_merged
    blocks = np.lexsort((block_c, block_r, win_of_block))             # stable: window, then row, col
    order = (ys * grid_w + xs)[blocks].reshape(-1)
    restore = np.argsort(blocks)
    return PatchLayout(order=order, rows=ys[blocks].reshape(-1), cols=xs[blocks].reshape(-1),
                       window=np.repeat(win_of_block[blocks], merge * merge), restore=restore)


def window_mask(window: np.ndarray) -> np.ndarray:
    """[n, n] f16: 0 inside a window, -inf across windows (attention within windows only)."""
    # filled in place: np.where would build an [n, n] float64 first (200 MB at 5120 patches)
    mask = np.full((len(window), len(window)), -np.inf, np.float16)
    mask[window[:, None] == window[None, :]] = 0
    return mask
