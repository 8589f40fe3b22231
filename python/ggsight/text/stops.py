"""Stop strings over streamed text: emit what is safe, hold back what may start a stop.

    m = StopMatcher(["</answer>", "\\nUser:"])
    for piece in pieces:                 # detokenized text, one piece per token
        emit, stopped = m.push(piece)
        send(emit)
        if stopped:
            break
    else:
        send(m.flush())

A piece is held back only while it could still grow into a stop string, so a client never
sees the beginning of a stop string that later completes, and text that cannot be part of
one is never delayed.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["StopMatcher"]


class StopMatcher:
    """Finds the first stop string to complete in a text stream fed piece by piece.

    The stream ends where that stop begins; the stop itself and any text after it are never
    emitted. "First to complete" (smallest end, then the longest of those) rather than
    "first to start" makes the result independent of how the text is cut into pieces: with
    stops "abc" and "b", the text "xabc" stops after "xa" whether it arrives as one piece
    or as "xab" + "c" (generation would have halted at "b" anyway). When no stop contains
    another, the two rules agree.
    """

    def __init__(self, stops: Iterable[str] = ()):
        if isinstance(stops, str):
            raise TypeError("stops must be a list of strings, not a single string")
        stops = list(stops)
        for s in stops:
            if not isinstance(s, str):
                raise TypeError(f"stop strings must be str, not {type(s).__name__}")
        # Empty stops are dropped: "" would match before any text, which no client means.
        self.stops: tuple[str, ...] = tuple(sorted(set(filter(None, stops)), key=lambda s: (-len(s), s)))
        self._max_hold = max((len(s) for s in self.stops), default=1) - 1
        self._held = ""
        self.stopped = False
        self.matched: str | None = None     # the stop string that ended the stream

    def push(self, text: str) -> tuple[str, bool]:
        """Feed one piece; returns (text safe to emit now, whether a stop string was found)."""
        if self.stopped:
            return "", True
        if not self.stops:
            return text, False
        buf = self._held + text
        # Only the held text plus the new piece can contain a match: everything emitted
        # earlier was checked not to begin one.
        best_end, best = -1, -1
        for stop in self.stops:             # longest first, so equal ends keep the longest
            i = buf.find(stop)
            if i >= 0 and (best_end < 0 or i + len(stop) < best_end):
                best_end, best, self.matched = i + len(stop), i, stop
        if best >= 0:
            self.stopped, self._held = True, ""
            return buf[:best], True
        keep = self._partial_suffix(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep], False

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest suffix of buf that is a proper prefix of some stop."""
        for k in range(min(len(buf), self._max_hold), 0, -1):
            tail = buf[-k:]
            if any(s.startswith(tail) for s in self.stops):
                return k
        return 0

    def flush(self) -> str:
        """The held-back text, at the end of generation (it never completed a stop)."""
        out, self._held = self._held, ""
        return "" if self.stopped else out

    @property
    def pending(self) -> str:
        """Text held back so far (for logging; not yet safe to emit)."""
        return self._held
