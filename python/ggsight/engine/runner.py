"""Runs micro-batches of one sequence through a model graph, reusing the last graph."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..cache import BatchInputs, KVCache, plan_batch
from ..ggml import Context, Scheduler


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

    def __init__(self, model, cache: KVCache, sched: Scheduler, n_batch: int, max_nodes: int = 16384):
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

    def decode(self, tokens: Sequence[int], positions: Sequence[int], outputs: Sequence[int]) -> np.ndarray:
        """One micro-batch; returns logits [len(outputs), n_vocab] (float32)."""
        t_step = time.perf_counter()
        plan = plan_batch(self.cache, tokens, positions, outputs)
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
        built.inputs.write(plan)
        t_compute = time.perf_counter()
        self.sched.compute(built.graph)
        self.compute_seconds += time.perf_counter() - t_compute
        logits = built.logits.read().reshape(len(outputs), -1)
        self.step_seconds += time.perf_counter() - t_step
        return logits

    def evaluate(self, tokens: Sequence[int], start: int, all_logits: bool = False) -> np.ndarray:
        """Feed tokens at positions start.. in n_batch chunks; logits of the last (or every) token."""
        tokens = list(tokens)
        out = []
        for i in range(0, len(tokens), self.n_batch):
            chunk = tokens[i:i + self.n_batch]
            pos = np.arange(start + i, start + i + len(chunk))
            wanted = range(len(chunk)) if all_logits else ([len(chunk) - 1] if i + len(chunk) == len(tokens) else [])
            if not wanted:  # an inner chunk: only the cache matters, still one output row
                wanted = [len(chunk) - 1]
                self.decode(chunk, pos, wanted)
                continue
            out.append(self.decode(chunk, pos, list(wanted)))
        self.cache.tokens.extend(tokens)
        return np.concatenate(out, axis=0)
