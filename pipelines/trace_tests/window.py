"""Failure counts per (test, spec) over a sliding window, for the ``alerting`` thresholds."""

from __future__ import annotations

from collections import deque

BUCKETS = 10
EXAMPLES = 5


class SpecWindow:
    """Runs and failures in ``BUCKETS`` time buckets spanning ``window`` seconds, and the last failing trace
    ids. Bounded: fixed buckets, ``EXAMPLES`` ids."""

    __slots__ = ("_bucket_s", "_buckets", "examples")

    def __init__(self, window: float) -> None:
        self._bucket_s = window / BUCKETS
        self._buckets: deque[list[float]] = deque()  # [bucket start, runs, failures]
        self.examples: deque[bytes] = deque(maxlen=EXAMPLES)

    def add(self, now: float, failed: bool, trace_id: bytes) -> None:
        start = now - now % self._bucket_s
        b = self._buckets
        if not b or b[-1][0] != start:
            b.append([start, 0, 0])
        last = b[-1]
        last[1] += 1
        if failed:
            last[2] += 1
            self.examples.appendleft(trace_id)
        self._expire(now)

    def add_passes(self, now: float, runs: int) -> None:
        """``runs`` passing runs at once (as many :meth:`add` calls that did not fail)."""
        start = now - now % self._bucket_s
        b = self._buckets
        if not b or b[-1][0] != start:
            b.append([start, 0, 0])
        b[-1][1] += runs
        self._expire(now)

    def _expire(self, now: float) -> None:
        horizon = now - self._bucket_s * BUCKETS
        b = self._buckets
        while b and b[0][0] + self._bucket_s <= horizon:
            b.popleft()

    def counts(self, now: float) -> tuple[int, int]:
        """(runs, failures) within the window."""
        self._expire(now)
        return int(sum(x[1] for x in self._buckets)), int(sum(x[2] for x in self._buckets))
