"""Host memory besides ggml's buffers, for the memory planner: what can only be measured (the
tokenizer and file metadata, built before the planner runs; a tower's own host inputs, built by
its graph reservation) and what is computed from sizes (each step's masks, logits, graph
metadata)."""
from __future__ import annotations

import os

from .runner import MAX_NODES


def resident_bytes() -> int | None:
    """This process's resident memory now (None where the OS does not say)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


class HostMeter:
    """Resident growth of the process while a block runs (0 where it cannot be read)."""

    def __enter__(self):
        self.before = resident_bytes()
        self.grown = 0
        return self

    def __exit__(self, *exc):
        after = resident_bytes()
        self.grown = max(0, after - self.before) if after is not None and self.before is not None else 0
        return False


class TracedPeak:
    """Peak bytes Python and numpy allocate while a block runs (tracemalloc; numpy reports its arrays)."""

    def __enter__(self):
        import tracemalloc
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        self.peak = 0
        return self

    def __exit__(self, *exc):
        import tracemalloc
        self.peak = max(0, tracemalloc.get_traced_memory()[1] - self._base)
        if not self._was_tracing:
            tracemalloc.stop()
        return False


# bytes per graph node of a ggml context (tensor struct + object header) and per graph slot
_NODE_BYTES, _GRAPH_SLOT_BYTES = 400, 40


def step_host_bytes(net, kv, n_tokens: int, n_vocab: int, max_nodes: int = MAX_NODES) -> dict:
    """Host arrays of the worst micro-batch: each kind's f16 mask [n_tokens, n_view] (kept until the
    step ends) with the boolean temporaries of the largest one's construction, the logits
    row and the sampler's working copies, and the runner's graph context (MAX_NODES nodes)."""
    views = [t.n_cells for t in kv.tables.values()]
    masks = sum(2 * n_tokens * v for v in views)          # the f16 masks
    temps = 2 * n_tokens * max(views, default=0)          # CellTable.mask's boolean + one temporary
    logits = n_vocab * 4 * 5        # the row read back, and the sampler's float64 copies
    graph = max_nodes * (_NODE_BYTES + _GRAPH_SLOT_BYTES)
    return {"masks": masks + temps, "logits": logits, "graph": graph}
