"""Cache bookkeeping without running a graph: cells, rings, masks, truncation."""
import numpy as np
import pytest

from ggsight.cache import FULL, CellTable, chunked_kind, window_kind
from ggsight.errors import InvalidArgumentError

NEG = -np.inf


def allowed(mask):
    return (mask == 0).astype(int)


def test_full_cache_uses_position_as_cell_and_causal_mask():
    t = CellTable(FULL, n_ctx=1024, n_batch=8)
    cells = t.store(np.arange(4))
    assert cells.tolist() == [0, 1, 2, 3]
    assert t.n_view() == 256
    m = t.mask(np.arange(4), 8)
    assert allowed(m).tolist() == [[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0],
                                   [1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
    assert m.dtype == np.float16 and m[0, 1] == NEG


def test_window_ring_holds_window_plus_batch_and_wraps():
    t = CellTable(window_kind(4), n_ctx=100, n_batch=2)
    assert t.size == 6
    for p in range(0, 10, 2):
        t.store(np.arange(p, p + 2))
    assert sorted(t.pos.tolist()) == [4, 5, 6, 7, 8, 9]
    q = np.array([8, 9])
    assert t.n_view() == 6
    m = allowed(t.mask(q, t.n_view()))
    seen = [sorted(t.pos[m[i] == 1].tolist()) for i in range(2)]
    assert seen == [[5, 6, 7, 8], [6, 7, 8, 9]]  # p - 4 < k <= p


def test_batch_larger_than_ring_is_refused():
    t = CellTable(window_kind(4), n_ctx=100, n_batch=2)
    with pytest.raises(InvalidArgumentError, match="sliding-window"):
        t.store(np.arange(7))


def test_position_beyond_context_is_refused():
    t = CellTable(FULL, n_ctx=16, n_batch=4)
    with pytest.raises(InvalidArgumentError, match="n_ctx"):
        t.store(np.array([16]))


def test_bidirectional_group_sees_its_own_later_tokens_only():
    t = CellTable(FULL, n_ctx=64, n_batch=8)
    t.store(np.arange(6))
    groups = np.array([-1, 0, 0, 0, 1, 1])  # two images: tokens 1-3 and 4-5
    m = allowed(t.mask(np.arange(6), 6, groups))
    assert m[1].tolist() == [1, 1, 1, 1, 0, 0]  # first image token sees the whole first image
    assert m[3].tolist() == [1, 1, 1, 1, 0, 0]  # never the later image
    assert m[4].tolist() == [1, 1, 1, 1, 1, 1]
    assert m[0].tolist() == [1, 0, 0, 0, 0, 0]  # text stays causal


def test_truncate_full_and_window():
    full = CellTable(FULL, n_ctx=64, n_batch=4)
    full.store(np.arange(10))
    assert full.truncate(6) and (full.pos >= 0).sum() == 6
    ring = CellTable(window_kind(4), n_ctx=64, n_batch=2)
    for p in range(0, 12, 2):
        ring.store(np.arange(p, p + 2))
    assert ring.truncate(11)          # 8, 9, 10 still in the ring
    assert not ring.truncate(6)       # 3, 4, 5 were overwritten: the window would have holes


def test_chunked_ring_holds_chunk_plus_batch_and_sees_only_its_chunk():
    t = CellTable(chunked_kind(8), n_ctx=1000, n_batch=3)
    assert t.size == 11
    for p in range(0, 27, 3):                      # 27 positions through an 11-cell ring
        q = np.arange(p, p + 3)
        t.store(q)
        m = allowed(t.mask(q, t.n_view()))
        for i, qp in enumerate(q):
            seen = sorted(t.pos[m[i] == 1].tolist())
            assert seen == list(range(qp // 8 * 8, qp + 1)), (qp, seen)


def test_chunked_truncate_keeps_what_the_next_token_needs():
    t = CellTable(chunked_kind(8), n_ctx=1000, n_batch=4)
    t.store(np.arange(0, 4))
    t.store(np.arange(4, 8))
    t.store(np.arange(8, 12))
    t.store(np.arange(12, 16))                     # cells of positions 0..3 overwritten
    assert t.truncate(14)                          # next token (14) needs 8..13: all there
    assert not t.truncate(6)                       # would need 0..5, gone
    with pytest.raises(InvalidArgumentError):
        chunked_kind(0)
