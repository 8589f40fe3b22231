"""Bind model weights by their GGUF names, with a report of what is missing or unused."""
from __future__ import annotations

from typing import Sequence

from ..errors import InvalidArgumentError
from ..ggml import Tensor, Weights


class WeightBinder:
    """Hands out tensors by GGUF name and remembers which ones a model asked for."""

    def __init__(self, weights: Weights, source: str = ""):
        self.weights = weights
        self.source = source or weights.gguf.path
        self.used: set[str] = set()
        self.missing: list[str] = []

    def __call__(self, name: str, shape: Sequence[int] | None = None) -> Tensor:
        """A required tensor; `shape` (ggml order) is checked when given."""
        t = self.weights.get(name)
        if t is None:
            self.missing.append(name)
            raise InvalidArgumentError(f"{self.source}: missing tensor {name!r}")
        if shape is not None and tuple(t.ne[:len(shape)]) != tuple(shape):
            raise InvalidArgumentError(f"{self.source}: tensor {name!r} has shape {t.shape}, expected {tuple(shape)}")
        self.used.add(name)
        return t

    def optional(self, name: str, shape: Sequence[int] | None = None) -> Tensor | None:
        return self(name, shape) if name in self.weights else None

    @property
    def unused(self) -> list[str]:
        return sorted(set(self.weights.tensors) - self.used)

    def report(self) -> str:
        parts = [f"{len(self.used)} tensors bound"]
        if self.missing:
            parts.append(f"missing: {', '.join(self.missing)}")
        if self.unused:
            parts.append(f"unused: {', '.join(self.unused[:10])}{' ...' if len(self.unused) > 10 else ''}")
        return "; ".join(parts)
