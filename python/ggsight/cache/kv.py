"""KV caches: cell bookkeeping in numpy (testable without a backend) and per-layer storage.

Kinds:
  full     one cell per position, up to n_ctx; the attended view grows in steps of 256 cells
  window   a ring of `window + n_batch` cells (cell = position % size): a sliding-window
           layer never needs more, whatever the context length
  chunked  a ring of `chunk + n_batch` cells: a query sees only its own chunk of positions
           (Llama 4's RoPE layers), so older chunks can be overwritten

A cache holds n_seq independent sequences (parallel generation), each in its own region of
every kind's cells; a query attends to its own sequence only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError
from ..ggml import Buffer, Context, DType, Tensor

VIEW_STEP = 256  # full caches attend over a multiple of this many cells (fewer graph shapes)
FA_KV_TILE = 64  # GGML_FA_TILE_KV: the CPU flash attention reads keys in tiles of this many cells


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
    """Which position each cell of one cache kind holds; -1 marks an empty cell.

    With n_seq sequences, sequence s owns the cells [s * stride, s * stride + size): each
    region is laid out exactly as a one-sequence table, so a sequence's keys sit in the same
    order whatever the others hold, and masks give each query only its own sequence's cells.
    """

    def __init__(self, kind: CacheKind, n_ctx: int, n_batch: int, n_seq: int = 1):
        if n_seq < 1:
            raise InvalidArgumentError(f"n_seq must be at least 1, got {n_seq}")
        self.kind = kind
        self.n_ctx = n_ctx
        self.n_seq = n_seq
        self.ring = ring_span(kind) > 0
        self.size = min(n_ctx, ring_span(kind) + n_batch) if self.ring else n_ctx  # cells of one sequence
        # regions start on a flash-attention KV tile, so the CPU kernel groups (and rounds) a
        # sequence's keys the same way it does when the sequence is alone
        self.stride = self.size if n_seq == 1 else -(-self.size // FA_KV_TILE) * FA_KV_TILE
        self.n_cells = self.stride * (n_seq - 1) + self.size
        self.pos = np.full(self.n_cells, -1, dtype=np.int64)
        self.seq = np.arange(self.n_cells, dtype=np.int64) // self.stride  # fixed regions: implied by the cell
        self.high = np.zeros(n_seq, np.int64)  # per sequence: cells of its region below this may be in use

    def _region(self, seq: int) -> np.ndarray:
        if not 0 <= seq < self.n_seq:
            raise InvalidArgumentError(f"sequence {seq} does not exist: the cache holds {self.n_seq}")
        return self.pos[seq * self.stride: seq * self.stride + self.size]

    def _update_high(self) -> None:
        for s in range(self.n_seq):
            used = np.flatnonzero(self._region(s) >= 0)
            self.high[s] = int(used.max()) + 1 if used.size else 0

    def clear(self, seq: int | None = None) -> None:
        """Empty one sequence's cells (None: every sequence's)."""
        if seq is None:
            self.pos.fill(-1)
        else:
            self._region(seq).fill(-1)
        self._update_high()

    def cells_for(self, positions: np.ndarray, seqs: np.ndarray | None = None) -> np.ndarray:
        if positions.size and positions.max() >= self.n_ctx:
            raise InvalidArgumentError(
                f"position {int(positions.max())} is beyond the context of {self.n_ctx} tokens: "
                "load the model with a larger n_ctx")
        cells = positions % self.size if self.ring else positions.copy()
        if seqs is not None:
            if seqs.size and (seqs.min() < 0 or seqs.max() >= self.n_seq):
                raise InvalidArgumentError(f"sequence ids must be in 0..{self.n_seq - 1}, got {seqs.tolist()}")
            cells += seqs * self.stride
        return cells

    def store(self, positions: np.ndarray, seqs: np.ndarray | None = None) -> np.ndarray:
        """Claim cells for new positions (of sequence 0, or `seqs` per token); returns the cell of each."""
        cells = self.cells_for(positions, seqs)
        if len(np.unique(cells)) != len(cells):
            what = "sliding-window" if self.kind.name == "window" else self.kind.name
            raise InvalidArgumentError(f"a batch is larger than the {what} cache holds ({self.size} cells)")
        self.pos[cells] = positions
        seqs = np.zeros_like(cells) if seqs is None else seqs
        np.maximum.at(self.high, seqs, cells - seqs * self.stride + 1)
        return cells

    def n_view(self, seqs: np.ndarray | None = None) -> int:
        """How many cells (from cell 0) a batch of these sequences (None: sequence 0) reads:
        through the used cells of the last one's region, rounded up."""
        # the cells a sequence alone would view, at its region's offset: sequence 0 by itself
        # runs the graph (and kernels) a one-sequence cache would
        return max(s * self.stride + min(self.size, -(-max(int(self.high[s]), 1) // VIEW_STEP) * VIEW_STEP)
                   for s in ([0] if seqs is None else np.unique(seqs).tolist()))

    def mask(self, q_pos: np.ndarray, n_view: int, bidirectional: np.ndarray | None = None,
             q_seq: np.ndarray | None = None) -> np.ndarray:
        """[n_tokens, n_view] f16: 0 where query i may see cell j, -inf elsewhere.

        `bidirectional` (optional, one group id per query, -1 for none) lets queries of
        one group see each other's cells in both directions (an image in Gemma 3).
        `q_seq`: each query's sequence (None: all sequence 0); it sees no other sequence's cells.
        """
        q_seq = np.zeros(len(q_pos), np.int64) if q_seq is None else q_seq
        k_pos = self.pos[:n_view][None, :]
        q = q_pos[:, None]
        # one [n_tokens, n_view] boolean and one temporary at a time (at 32K cells x 512 queries
        # every such array is 16 MiB): comparisons of a column with a row, combined in place
        allowed = k_pos <= q
        allowed &= k_pos >= 0
        if bidirectional is not None and (bidirectional >= 0).any():
            allowed |= self._same_group(q_pos, q_seq, bidirectional, n_view)
        if self.kind.name == "window":
            allowed &= k_pos > q - self.kind.window
        elif self.kind.name == "chunked":
            allowed &= (k_pos // self.kind.chunk) == (q // self.kind.chunk)
        if self.n_seq > 1:
            allowed &= self.seq[:n_view][None, :] == q_seq[:, None]
        out = np.full(allowed.shape, -np.inf, dtype=np.float16)
        out[allowed] = 0
        return out

    def _same_group(self, q_pos, q_seq, groups, n_view):
        group_of = dict(zip(zip(q_seq.tolist(), q_pos.tolist()), groups.tolist()))
        k_group = np.array([group_of.get(key, -1) for key in zip(self.seq[:n_view].tolist(),
                                                                  self.pos[:n_view].tolist())])
        return (k_group[None, :] >= 0) & (k_group[None, :] == groups[:, None])

    def truncate(self, n_keep: int, seq: int = 0) -> bool:
        """Forget positions >= n_keep of one sequence. False when that would leave a gap the window needs."""
        region = self._region(seq)
        if self.ring:
            first = n_keep - self.kind.window + 1 if self.kind.name == "window" else n_keep // self.kind.chunk * self.kind.chunk
            need = np.arange(max(0, first), n_keep)
            if need.size and not np.all(region[need % self.size] == need):
                return False
        region[region >= n_keep] = -1
        self._update_high()
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
    """Per-layer caches of n_seq independent sequences; layers of one kind share a cell table."""

    def __init__(self, kinds: list[CacheKind], head_dim: int, n_head_kv: list[int], n_ctx: int, n_batch: int,
                 dtype: DType = DType.F16, device_index: int = 0, n_seq: int = 1,
                 layer_devices: list[int] | None = None):
        """layer_devices: the device of each layer's K/V (its weights' device); default all on device_index."""
        self.kinds = kinds
        self.n_seq = n_seq
        self.tables = {k: CellTable(k, n_ctx, n_batch, n_seq) for k in dict.fromkeys(kinds)}
        where = list(layer_devices) if layer_devices is not None else [device_index] * len(kinds)
        if len(where) != len(kinds):
            raise InvalidArgumentError(f"layer_devices names {len(where)} layers; the cache has {len(kinds)}")
        self.contexts: dict[int, Context] = {d: Context(2 * where.count(d) + 1, frozen=True) for d in dict.fromkeys(where)}
        self.layers = [LayerKV(self.contexts[where[il]], il, head_dim, n_head_kv[il], self.tables[k].n_cells, dtype)
                       for il, k in enumerate(kinds)]
        self.buffers = {d: Buffer.for_context(ctx, d) for d, ctx in self.contexts.items()}
        for buf in self.buffers.values():
            buf.clear(0)
        self.ctx = next(iter(self.contexts.values()))
        self.buffer = next(iter(self.buffers.values()))

    @property
    def nbytes(self) -> int:
        return sum(b.size for b in self.buffers.values())

    def clear(self, seq: int | None = None) -> None:
        """Empty one sequence (None: all of them)."""
        for t in self.tables.values():
            t.clear(seq)

    def truncate(self, n_keep: int, seq: int = 0) -> bool:
        """Keep the first n_keep positions of one sequence; False (and it cleared) when a kind cannot."""
        if all(t.truncate(n_keep, seq) for t in self.tables.values()):
            return True
        self.clear(seq)
        return False
