"""M-RoPE position bookkeeping (no backend)."""
import numpy as np
import pytest

from ggsight.engine.positions import mrope_positions, text_positions


def test_text_only_counts_up_on_every_axis():
    pos, offset = mrope_positions(5, [])
    assert offset == 0 and pos[:3].tolist() == [list(range(5))] * 3 and not pos[3].any()


def test_image_grid_then_text_resumes_past_the_longer_side():
    # 2 text tokens, a 2 x 3 image, 2 text tokens
    pos, offset = mrope_positions(10, [(2, 2, 3)])
    assert pos[0].tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 5, 6]
    assert pos[1].tolist() == [0, 1, 2, 2, 2, 3, 3, 3, 5, 6]
    assert pos[2].tolist() == [0, 1, 2, 3, 4, 2, 3, 4, 5, 6]
    assert offset == 7 - 10  # next token (index 10) sits at 7


def test_two_images_and_a_portrait_one():
    pos, offset = mrope_positions(1 + 4 + 1 + 6, [(1, 2, 2), (6, 3, 2)])
    assert pos[0, 6:].tolist() == [4] * 6                   # second image starts at 1 + 2 + 1
    assert pos[1, 6:].tolist() == [4, 4, 5, 5, 6, 6]        # rows
    assert pos[2, 6:].tolist() == [4, 5, 4, 5, 4, 5]        # cols
    assert offset == (4 + 3) - 12


def test_generated_text_continues_from_the_offset():
    _, offset = mrope_positions(10, [(2, 2, 3)])
    assert text_positions(10, 2, offset)[:3].tolist() == [[7, 8]] * 3


def test_overlapping_images_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        mrope_positions(8, [(0, 2, 2), (2, 2, 2)])
