"""KV caches: cell bookkeeping in numpy (testable without a backend) and per-layer storage.

Kinds:
  full     one cell per position, up to n_ctx; the attended view grows in steps of 256 cells
  window   a ring of `window + n_batch` cells (cell = position % size): a sliding-window
           layer never needs more, whatever the context length
  chunked  a ring of `chunk + n_batch` cells: a query sees only its own chunk of positions
           (Llama 4's RoPE layers), so older chunks can be overwritten
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError
from ..ggml import Buffer, Context, DType, Tensor

VIEW_STEP = 256  # full caches attend over a multiple of this many cells (fewer graph shapes)


@dataclass(frozen=True)
class CacheKind:
    name: str            # "full", "window" or "chunked"
    window: int = 0      # sliding window: a query at p sees keys at p - window < k <= p
    chunk: int = 0       # chunked: a query at p sees keys at p // chunk * chunk <= k <= p


FULL = CacheKind("full")


def window_kind(window: int) -> CacheKind:
    return CacheKind("window", window)


def chunked_kind(chunk: int) -> CacheKind:
    if chunk < 1:
        raise InvalidArgumentError(f"attention chunk size must be positive, got {chunk}")
    return CacheKind("chunked", chunk=chunk)


def ring_span(kind: CacheKind) -> int:
    """Positions behind the newest one that a ring kind must keep (0: not a ring)."""
    return kind.window if kind.name == "window" else kind.chunk if kind.name == "chunked" else 0


class CellTable:
    """Which position each cell of one cache kind holds; -1 marks an empty cell."""

    def __init__(self, kind: CacheKind, n_ctx: int, n_batch: int):
        self.kind = kind
        self.n_ctx = n_ctx
        self.ring = ring_span(kind) > 0
        self.size = min(n_ctx, ring_span(kind) + n_batch) if self.ring else n_ctx
        self.pos = np.full(self.size, -1, dtype=np.int64)
        self.high = 0  # cells below this index may be in use

    def clear(self) -> None:
        self.pos.fill(-1)
        self.high = 0

    def cells_for(self, positions: np.ndarray) -> np.ndarray:
        if positions.size and positions.max() >= self.n_ctx:
            raise InvalidArgumentError(
                f"position {int(positions.max())} is beyond the context of {self.n_ctx} tokens: "
                "load the model with a larger n_ctx")
        return positions % self.size if self.ring else positions.copy()

    def store(self, positions: np.ndarray) -> np.ndarray:
        """Claim cells for new positions; returns the cell index of each."""
        cells = self.cells_for(positions)
        if len(np.unique(cells)) != len(cells):
            what = "sliding-window" if self.kind.name == "window" else self.kind.name
            raise InvalidArgumentError(f"a batch is larger than the {what} cache holds ({self.size} cells)")
        self.pos[cells] = positions
        if cells.size:
            self.high = max(self.high, int(cells.max()) + 1)
        return cells

    def n_view(self) -> int:
        """How many cells (from cell 0) the attention reads: the used ones, rounded up."""
        return min(self.size, -(-max(self.high, 1) // VIEW_STEP) * VIEW_STEP)

    def mask(self, q_pos: np.ndarray, n_view: int, bidirectional: np.ndarray | None = None) -> np.ndarray:
        """[n_tokens, n_view] f16: 0 where query i may see cell j, -inf elsewhere.

        `bidirectional` (optional, one group id per query, -1 for none) lets queries of
        one group see each other's cells in both directions (an image in Gemma 3).
        """
        k_pos = self.pos[:n_view][None, :]
        q = q_pos[:, None]
        allowed = (k_pos >= 0) & (k_pos <= q)
        if bidirectional is not None and (bidirectional >= 0).any():
            allowed |= self._same_group(q_pos, bidirectional, n_view)
        if self.kind.name == "window":
            allowed &= (q - k_pos) < self.kind.window
        elif self.kind.name == "chunked":
            allowed &= (k_pos // self.kind.chunk) == (q // self.kind.chunk)
        out = np.full(allowed.shape, -np.inf, dtype=np.float16)
        out[allowed] = 0
        return out

    def _same_group(self, q_pos, groups, n_view):
        group_of_pos = dict(zip(q_pos.tolist(), groups.tolist()))
        k_group = np.array([group_of_pos.get(int(p), -1) for p in self.pos[:n_view]])
        return (k_group[None, :] >= 0) & (k_group[None, :] == groups[:, None])

    def truncate(self, n_keep: int) -> bool:
        """Forget positions >= n_keep. False when that would leave a gap the window needs."""
        if self.ring:
            first = n_keep - self.kind.window + 1 if self.kind.name == "window" else n_keep // self.kind.chunk * self.kind.chunk
            need = np.arange(max(0, first), n_keep)
            if need.size and not np.all(self.pos[need % self.size] == need):
                return False
        self.pos[self.pos >= n_keep] = -1
        used = np.flatnonzero(self.pos >= 0)
        self.high = int(used.max()) + 1 if used.size else 0
        return True


class LayerKV:
    """K and V storage of one layer: [head_dim * n_head_kv, n_cells] each."""

    def __init__(self, ctx: Context, layer: int, head_dim: int, n_head_kv: int, n_cells: int, dtype: DType):
        self.head_dim, self.n_head_kv = head_dim, n_head_kv
        self.k = ctx.new_tensor((head_dim * n_head_kv, n_cells), dtype, f"cache_k-{layer}")
        self.v = ctx.new_tensor((head_dim * n_head_kv, n_cells), dtype, f"cache_v-{layer}")

    def store(self, k_cur: Tensor, v_cur: Tensor, cells: Tensor, n_view: int) -> tuple[Tensor, Tensor]:
        """Write this batch's K/V rows at `cells`; return views [head_dim, n_view, n_head_kv]."""
        n_tokens = k_cur.ne[2]
        width = self.head_dim * self.n_head_kv
        k_all = self.k.set_rows(k_cur.reshape(width, n_tokens), cells)
        v_all = self.v.set_rows(v_cur.reshape(width, n_tokens), cells)
        # Views of the set_rows results (not of the cache) so the writes come first in the graph.
        row = self.k.nb[1]
        k = k_all.view((self.head_dim, n_view, self.n_head_kv), (0, row, self.k.nb[0] * self.head_dim))
        v = v_all.view((self.head_dim, n_view, self.n_head_kv), (0, row, self.v.nb[0] * self.head_dim))
        return k, v


class KVCache:
    """Per-layer caches of one sequence; layers of one kind share a cell table."""

    def __init__(self, kinds: list[CacheKind], head_dim: int, n_head_kv: list[int], n_ctx: int, n_batch: int,
                 dtype: DType = DType.F16, device_index: int = 0):
        self.kinds = kinds
        self.tables = {k: CellTable(k, n_ctx, n_batch) for k in dict.fromkeys(kinds)}
        self.ctx = Context(2 * len(kinds) + 1, frozen=True)
        self.layers = [LayerKV(self.ctx, il, head_dim, n_head_kv[il], self.tables[k].size, dtype)
                       for il, k in enumerate(kinds)]
        self.buffer = Buffer.for_context(self.ctx, device_index)
        self.buffer.clear(0)

    @property
    def nbytes(self) -> int:
        return self.buffer.size

    def clear(self) -> None:
        for t in self.tables.values():
            t.clear()

    def truncate(self, n_keep: int) -> bool:
        """Keep the first n_keep positions; False (and cleared) when a kind cannot."""
        if all(t.truncate(n_keep) for t in self.tables.values()):
            return True
        self.clear()
        return False
