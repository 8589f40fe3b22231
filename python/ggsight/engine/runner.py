"""Runs micro-batches (of one sequence, or several in one cache) through a model graph, reusing the last graph."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..cache import BatchInputs, KVCache, plan_batch
from ..ggml import Context, Scheduler

MAX_NODES = 16384  # graph nodes a text forward may use (the memory planner builds the same graph)


class _BuiltGraph:
    def __init__(self, model, cache: KVCache, plan, max_nodes: int):
        self.ctx = Context(max_nodes)
        with self.ctx:
            self.inputs = BatchInputs(self.ctx, plan)
            self.logits = model.forward(self.inputs, cache)
        self.graph = self.ctx.graph(self.logits, max_nodes=max_nodes)


class Runner:
    """Evaluates tokens into the cache and returns logits of the requested rows.

    Consecutive batches of the same shape (decode steps, equal prefill chunks) reuse the
    built graph and its allocation: only the input tensors get new data.
    """

    def __init__(self, model, cache: KVCache, sched: Scheduler, n_batch: int, max_nodes: int = MAX_NODES):
        self.model = model
        self.cache = cache
        self.sched = sched
        self.n_batch = n_batch
        self.max_nodes = max_nodes
        self._last_key = None
        self._last: _BuiltGraph | None = None
        self.graphs_built = 0
        self.build_seconds = 0.0    # Python + ggml time spent building graphs
        self.compute_seconds = 0.0  # time inside ggml's compute
        self.step_seconds = 0.0     # whole decode() calls: compute + Python around it

    def decode(self, tokens: Sequence[int], positions: Sequence[int], outputs: Sequence[int],
               groups=None, images=(), rope_positions=None, seqs=None) -> np.ndarray:
        """One micro-batch; returns logits [len(outputs), n_vocab] (float32). `seqs`: each
        token's cache sequence (None: sequence 0)."""
        t_step = time.perf_counter()
        plan = plan_batch(self.cache, tokens, positions, outputs, groups, images, rope_positions, seqs)
        key = plan.shape_key()
        if key != self._last_key:
            t0 = time.perf_counter()
            self._last = None  # free the old graph's context before building the next
            self._last = _BuiltGraph(self.model, self.cache, plan, self.max_nodes)
            self.sched.alloc(self._last.graph)
            self._last_key = key
            self.graphs_built += 1
            self.build_seconds += time.perf_counter() - t0
        built = self._last
        self.sched.ensure_allocated(built.graph)   # an image encoded since then took the buffers
        built.inputs.write(plan)
        t_compute = time.perf_counter()
        self.sched.compute(built.graph)
        self.compute_seconds += time.perf_counter() - t_compute
        logits = built.logits.read().reshape(len(outputs), -1)
        self.step_seconds += time.perf_counter() - t_step
        return logits

    def evaluate(self, tokens: Sequence[int], start: int, all_logits: bool = False,
                 images: Sequence[tuple[int, np.ndarray]] = (), bidirectional: bool = True,
                 rope_positions: np.ndarray | None = None, seq: int = 0) -> np.ndarray:
        """Feed tokens at positions start.. of sequence `seq` in chunks of n_batch; logits of the
        last (or every) token.

        `images`: (index in `tokens`, embeddings [n, n_embd]) for runs of image tokens. With
        `bidirectional`, each run is one group that attends to itself in both directions and
        never splits: a chunk grows to hold it whole. Otherwise image tokens are causal and a
        run may split at any token. `rope_positions`: [4, len(tokens)] for M-RoPE models.
        """
        tokens = list(tokens)
        groups = np.full(len(tokens), -1, dtype=np.int64)
        for first, emb in images if bidirectional else ():
            groups[first:first + len(emb)] = start + first  # unique per image, stable across chunks
        out, i = [], 0
        while i < len(tokens):
            end = min(len(tokens), i + self.n_batch)
            if end < len(tokens) and groups[end - 1] >= 0 and groups[end] == groups[end - 1]:
                run = groups[end - 1]
                cut = int(np.flatnonzero(groups[i:end] == run)[0]) + i
                # stop before the image, or, when it starts the chunk, take all of it
                end = cut if cut > i else i + int(np.sum(groups[i:] == run))
            chunk = tokens[i:end]
            pos = np.arange(start + i, start + end)
            last = end == len(tokens)
            wanted = list(range(len(chunk))) if all_logits else [len(chunk) - 1]
            chunk_images = []   # the rows of each image that fall in this chunk
            for f, e in images:
                lo, hi = max(f, i), min(f + len(e), end)
                if lo < hi:
                    chunk_images.append((lo - i, e[lo - f:hi - f]))
            rope = None if rope_positions is None else rope_positions[:, i:end]
            logits = self.decode(chunk, pos, wanted, groups[i:end], chunk_images, rope, seq)
            if all_logits or last:
                out.append(logits)
            i = end
        return np.concatenate(out, axis=0)
