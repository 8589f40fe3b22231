"""Token sampling from one row of logits: penalties, truncation, temperature, a seeded draw.

The chain is llama.cpp's default order (common/sampling.cpp), restricted to what Ollama
exposes: penalties -> top_k -> top_p -> min_p -> temperature -> draw. Temperature comes last,
so top_p and min_p see the temperature-1 distribution, as in llama.cpp (Ollama's Go sampler
applies temperature before top_p; we follow llama.cpp, the engine most GGUF users compare to).

    sampler = Sampler(SamplingParams.from_options({"temperature": 0.7, "seed": 1}), n_vocab)
    token = sampler.sample(logits, history=tokens_so_far)

Cost at n_vocab = 262144 (Gemma 3) is one argpartition plus work on the survivors; with
top_k off, a few full-vocabulary passes (exp, block sums); never a full argsort.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["Sampler", "SamplingParams"]

_INT_FIELDS = ("top_k", "repeat_last_n", "seed")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling options, named and defaulted as Ollama's options are.

    temperature 0.8, top_k 40, top_p 0.9, min_p 0.0 are Ollama's defaults (api/types.go).
    temperature <= 0 is greedy. top_k <= 0 disables top-k (so the -1 some clients send
    works); top_p = 1 and min_p = 0 disable those filters.
    repeat_penalty defaults to 1.0 (off) as in llama.cpp; Ollama's table says 1.1 but its Go
    sampler ignored penalties, so 1.0 reproduces what Ollama users actually got.
    repeat_last_n is the window for all three penalties (llama.cpp's rule); 0 disables them,
    -1 means the whole history.
    seed None draws a fresh random seed; from_options maps Ollama's seed -1 to None.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    seed: int | None = None
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    OPTION_NAMES: ClassVar[frozenset[str]]  # filled in below from the fields

    def validate(self) -> "SamplingParams":
        """Raise ValueError naming the first nonsensical option; returns self."""
        for name in ("temperature", "top_p", "min_p", "repeat_penalty",
                     "presence_penalty", "frequency_penalty"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"sampling option {name} must be a finite number, got {v!r}")
        for name in _INT_FIELDS:
            v = getattr(self, name)
            if (v is not None or name != "seed") and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"sampling option {name} must be an integer, got {v!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1] (0 = off), got {self.min_p}")
        if self.repeat_penalty <= 0:
            raise ValueError(f"repeat_penalty must be > 0 (1 = off), got {self.repeat_penalty}")
        if self.repeat_last_n < -1:
            raise ValueError(f"repeat_last_n must be >= -1 (-1 = whole history, 0 = off), "
                             f"got {self.repeat_last_n}")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"seed must be >= 0 or None (random), got {self.seed}")
        return self

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None,
                     base: "SamplingParams | None" = None) -> "SamplingParams":
        """Build from Ollama option names, over `base` (e.g. a Modelfile's parameters).

        Unknown names raise; callers holding a full Ollama options dict (num_ctx, stop, ...)
        pick the sampling ones with OPTION_NAMES first. A None value keeps the base value.
        """
        base = base if base is not None else cls()
        changes: dict[str, Any] = {}
        for name, value in (options or {}).items():
            if name not in cls.OPTION_NAMES:
                raise ValueError(f"unknown sampling option {name!r}; valid options are: "
                                 f"{', '.join(sorted(cls.OPTION_NAMES))}")
            if value is None:
                continue
            # JSON clients send 40.0 for 40; accept integral floats for integer options.
            if name in _INT_FIELDS and isinstance(value, float) and value.is_integer():
                value = int(value)
            if name == "seed" and isinstance(value, int) and not isinstance(value, bool) and value < 0:
                value = None                # Ollama and llama.cpp: seed -1 means random
            changes[name] = value
        return dataclasses.replace(base, **changes).validate()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


SamplingParams.OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SamplingParams))


class Sampler:
    """Draws token ids for one sequence; owns the random generator so draws are repeatable."""

    # Without top_k, top_p first looks at this many best tokens (see _top_p_only).
    _TOP_P_FIRST = 512

    def __init__(self, params: SamplingParams, n_vocab: int):
        if n_vocab <= 0:
            raise ValueError(f"n_vocab must be positive, got {n_vocab}")
        self.params = params.validate()
        self.n_vocab = int(n_vocab)
        self.reset()

    def reset(self) -> None:
        """Restart the random stream (same seed -> the same draws again)."""
        self._rng = np.random.default_rng(self.params.seed)

    def sample(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        """Choose the next token from `logits` [n_vocab]; `history` is the tokens so far."""
        x = np.asarray(logits, dtype=np.float32)
        if x.shape != (self.n_vocab,):
            raise ValueError(f"logits must have shape ({self.n_vocab},), got {x.shape}")
        x = self._penalize(x, history)       # a copy when penalties apply; the input stays
        p = self.params
        if p.temperature <= 0:
            best = int(np.argmax(x))
            _check_finite(x[best])
            return best
        ids, vals = self._truncate(x)
        # ids None: no filter applied, vals is the whole vocabulary in id order.
        w = vals - vals.max()
        # Capped so that 1/T fits float32 (an inf scale would turn the best token's 0 into NaN).
        w *= np.float32(1.0 / max(p.temperature, 1e-30))
        np.exp(w, out=w)
        j = _cum_search(w, self._rng.random(), "right")
        return j if ids is None else int(ids[j])

    def _penalize(self, x: np.ndarray, history: Sequence[int]) -> np.ndarray:
        p = self.params
        if (p.repeat_penalty == 1.0 and p.presence_penalty == 0.0 and p.frequency_penalty == 0.0) \
                or p.repeat_last_n == 0 or len(history) == 0:
            return x
        last = history if p.repeat_last_n < 0 else history[-p.repeat_last_n:]
        window = np.asarray(last, dtype=np.int64)
        if window.min() < 0 or window.max() >= self.n_vocab:
            raise ValueError(f"history holds token ids outside [0, {self.n_vocab})")
        ids, counts = np.unique(window, return_counts=True)
        x = x.copy()
        v = x[ids]
        if p.repeat_penalty != 1.0:
            # llama.cpp's rule (CTRL paper): shrink positive logits, push negative ones down.
            v = np.where(v > 0, v / np.float32(p.repeat_penalty), v * np.float32(p.repeat_penalty))
        # OpenAI's rule: every count > 0 here, so presence applies to all of these ids.
        v = v - np.float32(p.presence_penalty) - np.float32(p.frequency_penalty) * counts.astype(np.float32)
        x[ids] = v
        return x

    def _truncate(self, x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Apply top_k, top_p, min_p; returns (ids, logits) of the survivors."""
        p, n = self.params, self.n_vocab
        ids: np.ndarray | None = None
        vals = x
        if 0 < p.top_k < n:
            ids = _top_sorted(x, p.top_k)
            vals = x[ids]
            _check_finite(vals.max())        # argpartition ranks NaN highest, so it would be here
            if p.top_p < 1.0:
                # After top_k, top_p sees the renormalised top-k distribution (llama.cpp).
                keep = _cum_search(np.exp(vals - vals[0]), p.top_p, "left") + 1
                ids, vals = ids[:keep], vals[:keep]
        elif p.top_p < 1.0:
            ids = self._top_p_only(x)
            vals = x[ids]
        else:
            _check_finite(x.max())           # max propagates NaN
        if p.min_p > 0.0:
            # min_p keeps p_i >= min_p * p_max, i.e. logit_i >= max_logit + log(min_p);
            # the best token always survives.
            threshold = vals.max() + np.float32(math.log(p.min_p))
            if ids is None:
                ids = np.flatnonzero(x >= threshold)
                vals = x[ids]
            else:
                keep = vals >= threshold
                ids, vals = ids[keep], vals[keep]
        return ids, vals

    def _top_p_only(self, x: np.ndarray) -> np.ndarray:
        """Ids of the smallest set of best tokens whose probability reaches top_p (no top_k)."""
        top_p, n = self.params.top_p, self.n_vocab
        m = x.max()
        _check_finite(m)
        w = np.exp(x - m)
        target = top_p * w.sum(dtype=np.float64)
        # A trained model's top_p mass is nearly always within its few hundred best tokens.
        ids = _top_sorted(x, min(self._TOP_P_FIRST, n))
        cum = np.cumsum(w[ids], dtype=np.float64)
        if cum[-1] >= target:
            return ids[:min(int(np.searchsorted(cum, target, side="left")) + 1, ids.shape[0])]
        # A flat distribution: find the cut-off logit from sorted values (a value sort is ~5x
        # cheaper than argsort), then keep every token at or above it, in id order. Ties at
        # the cut-off all stay, which no order-based rule could break fairly anyway.
        s = np.sort(x)[::-1]
        cut = s[_cum_search(np.exp(s - m), top_p, "left")]
        return np.flatnonzero(x >= cut)


def _top_sorted(x: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest entries of x, largest first (ties: lower id first)."""
    n = x.shape[0]
    if k >= n:
        return np.argsort(-x, kind="stable")
    # argpartition is O(n); only the k survivors are sorted.
    part = np.argpartition(x, n - k)[n - k:]
    part.sort()                             # id order first, so the stable sort breaks ties by id
    return part[np.argsort(-x[part], kind="stable")]


_BLOCK = 1024


def _cum_search(w: np.ndarray, frac: float, side: str) -> int:
    """np.searchsorted(cumsum(w), frac * sum(w), side), clamped to a valid index.

    Computed in two levels (block sums, then one block), because a float64 cumsum over
    262144 entries costs ~6 ms and block sums ~0.2 ms. float64 keeps the rare tokens' share
    exact enough; float32 running sums over that many terms would not.
    """
    n = w.shape[0]
    if n <= 4 * _BLOCK:
        cum = np.cumsum(w, dtype=np.float64)
        return min(int(np.searchsorted(cum, frac * cum[-1], side=side)), n - 1)
    full = n - n % _BLOCK
    sums = w[:full].reshape(-1, _BLOCK).sum(axis=1, dtype=np.float64)
    if full < n:
        sums = np.append(sums, w[full:].sum(dtype=np.float64))
    cum = np.cumsum(sums)
    target = frac * cum[-1]
    b = min(int(np.searchsorted(cum, target, side=side)), sums.shape[0] - 1)
    start = b * _BLOCK
    block = w[start:start + _BLOCK]
    inner = np.cumsum(block, dtype=np.float64)
    j = min(int(np.searchsorted(inner, target - (cum[b - 1] if b else 0.0), side=side)), block.shape[0] - 1)
    if block[j] == 0:                       # rounding past the block's last positive weight
        nz = np.flatnonzero(block[:j + 1])
        j = int(nz[-1]) if nz.size else j
    return start + j


def _check_finite(best: Any) -> None:
    # A NaN or all -inf row means the forward pass broke; sampling from it would hide that.
    if not np.isfinite(best):
        raise ValueError(f"cannot sample: the best logit is {float(best)} (NaN or -inf logits)")
