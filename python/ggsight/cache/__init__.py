"""KV caches and batch inputs; the bookkeeping is plain numpy."""
from .batch import BatchInputs, BatchPlan, plan_batch
from .kv import FULL, CacheKind, CellTable, KVCache, chunked_kind, window_kind

__all__ = ["BatchInputs", "BatchPlan", "CacheKind", "CellTable", "FULL", "KVCache", "chunked_kind", "plan_batch", "window_kind"]
