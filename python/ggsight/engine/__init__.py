"""The engine: prompt layout to batches, the decode loop, sampling and caches."""
