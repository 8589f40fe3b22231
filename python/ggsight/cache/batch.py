"""The graph inputs of one micro-batch: token ids, positions, cache cells and masks."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ggml import Context, DType, Tensor
from .kv import CacheKind, KVCache


@dataclass
class BatchPlan:
    """What one micro-batch holds, in plain numpy (decided before any graph exists)."""
    tokens: np.ndarray                 # [n_tokens] int32
    positions: np.ndarray              # [n_tokens] int32
    outputs: np.ndarray                # indices (into the batch) whose logits are wanted
    cells: dict = field(default_factory=dict)    # CacheKind -> [n_tokens] int64
    masks: dict = field(default_factory=dict)    # CacheKind -> [n_tokens, n_view] f16
    image_rows: np.ndarray | None = None         # [n_rows, n_embd] f32 embeddings of image tokens
    embd_index: np.ndarray | None = None         # [n_tokens] int32: token i takes row i (text) or
                                                 # n_tokens + j (image row j)
    rope_positions: np.ndarray | None = None     # [4, n_tokens] int32 for M-RoPE models; None: 1-D

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def shape_key(self) -> tuple:
        """Batches with equal keys can run the same graph with new input data."""
        n_img = 0 if self.image_rows is None else len(self.image_rows)
        return (self.n_tokens, len(self.outputs), n_img, self.rope_positions is not None) + tuple(
            (k.name, k.window, m.shape[1]) for k, m in self.masks.items())


def plan_batch(cache: KVCache, tokens, positions, outputs, groups=None, images=(), rope_positions=None,
               seqs=None) -> BatchPlan:
    """Claim cache cells for the batch and build each kind's mask.

    `positions` are places in the sequence (they choose cells and causality); `rope_positions`
    ([4, n_tokens], M-RoPE models only) are what the rotary embedding sees.
    `seqs`: per token, the cache sequence it belongs to (None: all sequence 0); a token sees
    only its own sequence, so one batch can carry independent sequences.
    `groups`: per token, the id of the bidirectional group it belongs to (-1: causal).
    `images`: (first token index, [n, n_embd] embeddings) pairs replacing token embeddings.
    """
    plan = BatchPlan(np.asarray(tokens, np.int32), np.asarray(positions, np.int32), np.asarray(outputs, np.int32))
    if rope_positions is not None:
        plan.rope_positions = np.ascontiguousarray(rope_positions, np.int32).reshape(4, plan.n_tokens)
    pos64 = plan.positions.astype(np.int64)
    groups = None if groups is None else np.asarray(groups, np.int64)
    seqs = None if seqs is None else np.broadcast_to(np.asarray(seqs, np.int64), pos64.shape)
    for kind, table in cache.tables.items():
        plan.cells[kind] = table.store(pos64, seqs)
    for kind, table in cache.tables.items():
        plan.masks[kind] = table.mask(pos64, table.n_view(seqs), groups, seqs)
    if images:
        n = plan.n_tokens
        index = np.arange(n, dtype=np.int32)
        rows = []
        for first, emb in images:
            index[first:first + len(emb)] = n + sum(len(r) for r in rows) + np.arange(len(emb))
            rows.append(np.asarray(emb, np.float32))
        plan.image_rows = np.concatenate(rows)
        plan.embd_index = index
    return plan


class BatchInputs:
    """Input tensors of a graph built for one BatchPlan shape."""

    def __init__(self, ctx: Context, plan: BatchPlan):
        n = plan.n_tokens
        self.tokens = ctx.input("inp_tokens", (n,), DType.I32)
        self.positions = ctx.input("inp_pos", (n,), DType.I32)
        self.outputs = ctx.input("inp_out_ids", (len(plan.outputs),), DType.I32)
        self.n_outputs = len(plan.outputs)
        self.n_tokens = n
        self._used: list[bool] | None = None
        self.cells: dict[CacheKind, Tensor] = {}
        self.masks: dict[CacheKind, Tensor] = {}
        self.n_view: dict[CacheKind, int] = {}
        self.image_rows = self.embd_index = self.rope_positions = None
        if plan.rope_positions is not None:  # 4 streams back to back, as ggml's rope_multi reads them
            self.rope_positions = ctx.input("inp_rope_pos", (4 * n,), DType.I32)
        if plan.image_rows is not None:
            self.image_rows = ctx.input("inp_img_embd", plan.image_rows.shape[::-1], DType.F32)
            self.embd_index = ctx.input("inp_embd_index", (n,), DType.I32)
        for i, (kind, mask) in enumerate(plan.masks.items()):
            self.cells[kind] = ctx.input(f"inp_cells_{kind.name}", (n,), DType.I64)
            self.masks[kind] = ctx.input(f"inp_mask_{kind.name}", (mask.shape[1], n), DType.F16)
            self.n_view[kind] = mask.shape[1]

    def write(self, plan: BatchPlan) -> None:
        pairs = [(self.tokens, plan.tokens), (self.positions, plan.positions), (self.outputs, plan.outputs)]
        for kind in self.cells:
            pairs += [(self.cells[kind], plan.cells[kind]), (self.masks[kind], plan.masks[kind])]
        if self.image_rows is not None:
            pairs += [(self.image_rows, plan.image_rows), (self.embd_index, plan.embd_index)]
        if self.rope_positions is not None:
            pairs.append((self.rope_positions, plan.rope_positions.reshape(-1)))
        if self._used is None:
            # A graph may not use every input (all rows wanted, a kind with no layer): skip
            # those. Allocation does not change while a graph is reused, so ask once.
            self._used = [t.has_data for t, _ in pairs]
        for (tensor, data), used in zip(pairs, self._used):
            if used:
                tensor.write(data)
