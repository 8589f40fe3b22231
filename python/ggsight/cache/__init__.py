"""KV caches and batch inputs; the bookkeeping is plain numpy."""
from .batch import BatchInputs, BatchPlan, plan_batch
from .kv import FULL, CacheKind, CellTable, KVCache, window_kind

__all__ = ["BatchInputs", "BatchPlan", "CacheKind", "CellTable", "FULL", "KVCache", "plan_batch", "window_kind"]
