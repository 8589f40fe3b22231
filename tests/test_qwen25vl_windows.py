"""Qwen2.5-VL patch/window bookkeeping against transformers' own index functions."""
import numpy as np
import pytest

from ggsight.models.qwen25vl.windows import patch_layout, window_mask


def test_small_grid_by_hand():
    # 4 x 4 patches, 2 x 2 merge -> 2 x 2 tokens; windows of 1 token: 4 windows
    lay = patch_layout(4, 4, 2, 1)
    assert lay.order[:4].tolist() == [0, 1, 4, 5] and lay.order[4:8].tolist() == [2, 3, 6, 7]
    assert lay.window.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert lay.restore.tolist() == [0, 1, 2, 3]
    assert lay.rows[:4].tolist() == [0, 0, 1, 1] and lay.cols[:4].tolist() == [0, 1, 0, 1]
    m = window_mask(lay.window)
    assert m.shape == (16, 16) and m[0, 3] == 0 and np.isinf(m[0, 4])


def test_grid_not_divisible_by_merge_is_refused():
    with pytest.raises(ValueError, match="merge"):
        patch_layout(5, 4, 2, 2)


@pytest.mark.torch
@pytest.mark.parametrize("grid_h,grid_w,window", [(8, 8, 2), (12, 8, 2), (6, 14, 2), (16, 10, 4), (4, 4, 8)])
def test_matches_transformers(grid_h, grid_w, window):
    torch = pytest.importorskip("torch")
    vu = pytest.importorskip("transformers.vision_utils")
    patch, merge = 14, 2
    thw = torch.tensor([[1, grid_h, grid_w]])
    index, cu = vu.get_vision_window_index(thw, spatial_merge_size=merge, window_size=window * merge * patch,
                                           patch_size=patch)
    pos = vu.get_vision_position_ids(thw, merge)          # [n, 2] (h, w) in block-major order
    lay = patch_layout(grid_h, grid_w, merge, window)
    # HF: block-major patches, blocks permuted by window_index
    blocks = index.numpy()
    block_major = pos.numpy().reshape(-1, merge * merge, 2)[blocks].reshape(-1, 2)
    assert lay.rows.tolist() == block_major[:, 0].tolist() and lay.cols.tolist() == block_major[:, 1].tolist()
    assert lay.order.tolist() == (block_major[:, 0] * grid_w + block_major[:, 1]).tolist()
    assert lay.restore.tolist() == torch.argsort(index).tolist()
    # windows: HF's cumulative boundaries over tower positions
    bounds = np.flatnonzero(np.diff(lay.window)) + 1
    assert [0, *bounds.tolist(), len(lay.window)] == cu.tolist()
