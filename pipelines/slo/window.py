"""Good and bad counts of one objective in fixed-width time buckets, in bounded memory.

A :class:`Series` holds three rings of buckets, each slot tagged with the bucket it holds (its index
``floor(t / width)``), so a slot found holding an older bucket is simply reused:

* **minutes**: 1-minute buckets over the last 6 hours (361 slots): windows up to 6 h (5 m, 30 m, 1 h,
  6 h) are read from them. The width is the processor's ``bucket_width`` (1 minute unless set; demos and
  tests use seconds: at 5 s the ring has 4,321 slots, at the 1 s minimum 21,601);
* **hours**: 1-hour buckets over the objective's time window or its longest alert window, whichever is
  longer (673 slots for 28 days): longer windows (3 d, 28 d);
* **latency** (latency objectives only): one :class:`~pipelines.slo.histogram.Histogram` per 5 minutes
  over the last 6 hours (73 slots), for percentiles on pages.

Each count bucket also has a :class:`~pipelines.slo.causes.CauseTally` once it has a bad event. Memory
depends on the window and the bounds (causes per bucket, examples per cause, histogram bins), never on
the traffic. A window ``[now - w, now]`` sums the buckets it touches; the oldest one, partly outside,
counts for the part inside (events are taken as spread evenly over a bucket).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pipelines.slo.causes import CauseShare, CauseTally, merge
from pipelines.slo.histogram import Histogram

MINUTE, HOUR, HIST_WIDTH = 60.0, 3600.0, 300.0
FINE_SPAN = 6 * HOUR  # minutes cover this much


class Ring:
    """Count buckets of ``width`` seconds in ``size`` slots."""

    __slots__ = ("bad", "causes", "epoch", "good", "size", "width")

    def __init__(self, width: float, size: int) -> None:
        self.width = width
        self.size = size
        self.epoch = array("q", [-1]) * size  # bucket index held by each slot, -1: none
        self.good = array("q", [0]) * size
        self.bad = array("q", [0]) * size
        self.causes: list[CauseTally | None] = [None] * size

    @property
    def span(self) -> float:
        return self.width * (self.size - 1)

    def slot(self, index: int) -> int:
        s = index % self.size
        if self.epoch[s] != index:
            self.epoch[s] = index
            self.good[s] = 0
            self.bad[s] = 0
            self.causes[s] = None
        return s

    def add(self, now: float, good: int, bad: int) -> int:
        s = self.slot(math.floor(now / self.width))
        self.good[s] += good
        self.bad[s] += bad
        return s

    def tally(self, s: int) -> CauseTally:
        t = self.causes[s]
        if t is None:
            t = self.causes[s] = CauseTally()
        return t

    def buckets(self, now: float, window: float) -> Iterator[tuple[int, float]]:
        """(slot, weight) of the buckets that overlap ``[now - window, now]``, newest first."""
        width = self.width
        start = now - window
        cur = math.floor(now / width)
        first = max(math.floor(start / width), cur - self.size + 1)
        epoch = self.epoch
        for idx in range(cur, first - 1, -1):
            s = idx % self.size
            if epoch[s] != idx:
                continue
            lo = idx * width
            if lo >= start:
                yield s, 1.0
                continue
            # the oldest bucket, partly before the window: the part inside, of the part already passed
            hi = min(lo + width, now)
            yield s, (hi - start) / (hi - lo) if hi > lo else 1.0

    def sums(self, now: float, window: float) -> tuple[float, float]:
        """(good, bad) in the window (the same buckets and weights as :meth:`buckets`, summed with numpy)."""
        width = self.width
        start = now - window
        cur = math.floor(now / width)
        first = max(math.floor(start / width), cur - self.size + 1)
        if first > cur:
            return 0.0, 0.0
        idx = np.arange(first, cur + 1, dtype=np.int64)
        slots = idx % self.size
        epoch = np.frombuffer(self.epoch, dtype=np.int64)
        valid = slots[epoch[slots] == idx]
        g = float(np.frombuffer(self.good, dtype=np.int64)[valid].sum())
        b = float(np.frombuffer(self.bad, dtype=np.int64)[valid].sum())
        lo = first * width
        s = first % self.size
        if lo < start and self.epoch[s] == first:  # the oldest bucket counts for its part inside the window
            hi = min(lo + width, now)
            w = (hi - start) / (hi - lo) if hi > lo else 1.0
            g -= self.good[s] * (1.0 - w)
            b -= self.bad[s] * (1.0 - w)
        return g, b

    def to_state(self) -> list[list[Any]]:
        out = []
        for s in range(self.size):
            if self.epoch[s] >= 0 and (self.good[s] or self.bad[s]):
                t = self.causes[s]
                out.append([self.epoch[s], self.good[s], self.bad[s], t.to_state() if t is not None else None])
        return out

    def restore(self, state: Sequence[Sequence[Any]], now: float) -> None:
        """Put saved buckets back (those still within the ring's span of ``now``)."""
        cur = math.floor(now / self.width)
        for idx, good, bad, causes in sorted(state, key=lambda b: int(b[0])):
            idx = int(idx)
            if idx > cur or idx <= cur - self.size:
                continue
            s = self.slot(idx)
            self.good[s] += int(good)
            self.bad[s] += int(bad)
            if causes is not None:
                self.causes[s] = CauseTally.from_state(causes)


class HistRing:
    """Latency histograms of ``width`` seconds in ``size`` slots."""

    __slots__ = ("epoch", "hists", "size", "width")

    def __init__(self, width: float, size: int) -> None:
        self.width = width
        self.size = size
        self.epoch = [-1] * size
        self.hists: list[Histogram | None] = [None] * size

    def hist(self, now: float) -> Histogram:
        idx = math.floor(now / self.width)
        s = idx % self.size
        h = self.hists[s]
        if self.epoch[s] != idx or h is None:
            self.epoch[s] = idx
            h = self.hists[s] = Histogram()
        return h

    def merged(self, now: float, window: float) -> Histogram:
        out = Histogram()
        cur = math.floor(now / self.width)
        first = max(math.floor((now - window) / self.width), cur - self.size + 1)
        for idx in range(first, cur + 1):
            s = idx % self.size
            h = self.hists[s]
            if self.epoch[s] == idx and h is not None:
                out.merge(h)
        return out

    def to_state(self) -> list[list[Any]]:
        return [[self.epoch[s], h.to_list()] for s, h in enumerate(self.hists) if h is not None and h.count]

    def restore(self, state: Sequence[Sequence[Any]], now: float) -> None:
        cur = math.floor(now / self.width)
        for idx, bins in state:
            idx = int(idx)
            if idx > cur or idx <= cur - self.size:
                continue
            s = idx % self.size
            self.epoch[s] = idx
            self.hists[s] = Histogram.from_list(bins)


class Series:
    """Everything measured for one objective (see the module docstring)."""

    __slots__ = ("hours", "latency", "max_causes", "max_examples", "minutes", "overflow")

    def __init__(self, span: float, latency: bool, max_causes: int = 10, max_examples: int = 3,
                 fine_width: float = MINUTE) -> None:
        """``span``: the longest window read (the time window, or a longer alert window); ``fine_width``: the
        width of the buckets of windows up to 6 hours (seconds, at least 1)."""
        if fine_width < 1:
            raise ValueError(f"the bucket width must be at least 1 s, got {fine_width:g} s")
        self.minutes = Ring(fine_width, math.ceil(FINE_SPAN / fine_width) + 1)
        self.hours = Ring(HOUR, math.ceil(max(span, FINE_SPAN) / HOUR) + 1)
        self.latency = HistRing(HIST_WIDTH, int(FINE_SPAN // HIST_WIDTH) + 1) if latency else None
        self.max_causes = max_causes
        self.max_examples = max_examples
        self.overflow = 0  # bad events tallied as "other" (a bucket's causes were full)

    def add(self, now: float, good: int, bad: int) -> tuple[int, int]:
        """Count events; returns the (minute, hour) slots, for :meth:`cause`."""
        return self.minutes.add(now, good, bad), self.hours.add(now, good, bad)

    def cause(self, slots: tuple[int, int], cause: str, trace_id: str, path: tuple[str, ...], n: int = 1) -> None:
        """Tally ``n`` bad events (already counted with :meth:`add`) to ``cause``."""
        mc, me = self.max_causes, self.max_examples
        if not self.minutes.tally(slots[0]).add(cause, trace_id, path, n, mc, me):
            self.overflow += n
        self.hours.tally(slots[1]).add(cause, trace_id, path, n, mc, me)

    def durations(self, now: float, values: Sequence[float]) -> None:
        if self.latency is not None and values:
            h = self.latency.hist(now)
            for v in values:
                h.add(v)

    def durations_ns(self, now: float, values: Sequence[int]) -> None:
        if self.latency is not None and values:
            h = self.latency.hist(now)
            for ns in values:
                h.add_ns(ns)

    def ring(self, window: float) -> Ring:
        return self.minutes if window <= FINE_SPAN else self.hours

    def sums(self, now: float, window: float) -> tuple[float, float]:
        return self.ring(window).sums(now, window)

    def causes(self, now: float, window: float) -> list[CauseShare]:
        ring = self.ring(window)
        tallies = ((t, w) for s, w in ring.buckets(now, window) if (t := ring.causes[s]) is not None)
        return merge(tallies, self.max_examples)

    def percentiles(self, now: float, window: float, qs: Sequence[float]) -> list[float | None] | None:
        if self.latency is None:
            return None
        return self.latency.merged(now, min(window, FINE_SPAN)).quantiles(qs)

    def to_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"minutes": self.minutes.to_state(), "minute_width": self.minutes.width,
                               "hours": self.hours.to_state()}
        if self.latency is not None:
            out["latency"] = self.latency.to_state()
        return out

    def restore(self, state: dict[str, Any], now: float) -> None:
        if float(state.get("minute_width", MINUTE)) == self.minutes.width:  # else bucket indexes differ: dropped
            self.minutes.restore(state.get("minutes", ()), now)
        self.hours.restore(state.get("hours", ()), now)
        if self.latency is not None:
            self.latency.restore(state.get("latency", ()), now)
