"""A fixed-bucket histogram series: per-bucket counts, sum, count, and the newest exemplar per bucket."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import numpy as np
from prometheus_client.samples import Exemplar


def bucket_labels(bounds: Sequence[float]) -> tuple[str, ...]:
    """The ``le`` label values of the bounds and of ``+Inf``, as Prometheus writes them."""
    return (*(repr(float(b)) for b in bounds), "+Inf")


class Histogram:
    """Observations into buckets with upper bounds ``bounds`` (``le``: a value equal to a bound is in its
    bucket) and a last bucket for the rest."""

    __slots__ = ("bounds", "count", "counts", "exemplars", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self.sum = 0.0
        self.count = 0
        self.exemplars: list[Exemplar | None] | None = None  # made on the first exemplar

    def observe(self, value: float) -> int:
        """Count ``value``; returns its bucket's index."""
        i = bisect_left(self.bounds, value)
        self.counts[i] += 1
        self.sum += value
        self.count += 1
        return i

    def add(self, counts: np.ndarray, total: float, n: int) -> None:
        """Add per-bucket ``counts`` of ``n`` observations summing to ``total``."""
        self.counts += counts
        self.sum += total
        self.count += n

    def set_exemplar(self, bucket: int, exemplar: Exemplar) -> None:
        ex = self.exemplars
        if ex is None:
            ex = self.exemplars = [None] * len(self.counts)
        ex[bucket] = exemplar

    def cumulative(self, labels: Sequence[str]) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
        """Buckets as exposition wants them: cumulative counts per ``le``, with the exemplar where there is one."""
        out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
        ex = self.exemplars
        for i, running in enumerate(np.cumsum(self.counts).tolist()):
            e = ex[i] if ex is not None else None
            out.append((labels[i], float(running)) if e is None else (labels[i], float(running), e))
        return out
