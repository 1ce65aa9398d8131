"""Exemplars that wait for tail sampling: an exemplar may only point at a trace the backend will have.

A processor before the trace buffer sees every span before its trace is decided. It files each exemplar
here under its trace id; when the buffer decides (it tells its outcome listeners), the exemplars of kept
traces are written into their series and those of dropped traces are forgotten. Bounded: at most
``max_traces`` trace ids wait (more are not filed), ``per_trace`` exemplars each, and an id still waiting
after ``timeout`` seconds is forgotten; each is counted.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Protocol

from prometheus_client.samples import Exemplar

from collector.model import Origin
from collector.telemetry import Telemetry


class ExemplarOwner(Protocol):
    """A series that filed an exemplar: told when it is written (its trace kept) or forgotten (dropped,
    expired), so that it can bound how many it has waiting."""

    def write_exemplar(self, bucket: int, exemplar: Exemplar) -> None: ...

    def exemplar_forgotten(self) -> None: ...


# (owner, bucket, value, span id, unix time): ``owner.write_exemplar(bucket, exemplar)`` puts it into its series.
Pending = tuple[ExemplarOwner, int, float, bytes, float]


class PendingExemplars:
    """A :class:`collector.component.TraceOutcomeListener` holding exemplars by trace id until decided."""

    counts_spans = False  # only trace ids matter here

    def __init__(self, telemetry: Telemetry, label: str, max_traces: int, per_trace: int, timeout: float) -> None:
        self.max_traces = max_traces
        self.per_trace = per_trace
        self.timeout = timeout
        self._waiting: dict[bytes, list[Pending]] = {}
        self._since: collections.deque[tuple[float, bytes]] = collections.deque()
        lab = ("processor",)
        t = telemetry.counter(
            "tracetriage_exemplars_dropped", "Exemplars not written: their trace was dropped by sampling "
            "(not_sampled), never decided in time (expired), or over a bound (overflow).", ("processor", "reason"))
        self._not_sampled = t.labels(label, "not_sampled")
        self._expired = t.labels(label, "expired")
        self._overflow = t.labels(label, "overflow")
        self._written = telemetry.counter("tracetriage_exemplars_written",
                                          "Exemplars written after their trace was kept.", lab).labels(label)
        self._gauge = telemetry.gauge("tracetriage_exemplars_pending_traces",
                                      "Trace ids with exemplars waiting for their sampling decision.",
                                      lab).labels(label)

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, trace_id: bytes, item: Pending) -> bool:
        """File ``item`` under its trace id; False when a bound refused it (counted; its owner is not told)."""
        waiting = self._waiting
        items = waiting.get(trace_id)
        if items is None:
            if len(waiting) >= self.max_traces:
                self._overflow.inc()
                return False
            waiting[trace_id] = [item]
            self._since.append((time.monotonic(), trace_id))
            return True
        if len(items) >= self.per_trace:
            self._overflow.inc()
            return False
        items.append(item)
        return True

    @staticmethod
    def _forget(items: list[Pending]) -> None:
        for item in items:
            item[0].exemplar_forgotten()

    def expire(self, now: float | None = None) -> None:
        """Forget trace ids that waited longer than ``timeout``."""
        now = time.monotonic() if now is None else now
        since, waiting = self._since, self._waiting
        limit = now - self.timeout
        while since and since[0][0] <= limit:
            _, tid = since.popleft()
            items = waiting.pop(tid, None)
            if items:
                self._expired.inc(len(items))
                self._forget(items)
        self._gauge.set(len(waiting))

    # -- TraceOutcomeListener -------------------------------------------------------------------------------

    def spans_received(self, origin: Origin, spans: int, size: int) -> None:
        pass

    def spans_decided(self, origin: Origin, spans: int, size: int, kept: bool) -> None:
        pass

    def traces_decided(self, kept: Sequence[bytes], dropped: Sequence[bytes]) -> None:
        waiting = self._waiting
        if not waiting:
            return
        forgotten = 0
        for tid in dropped:
            items = waiting.pop(tid, None)
            if items:
                forgotten += len(items)
                self._forget(items)
        if forgotten:
            self._not_sampled.inc(forgotten)
        written = 0
        for tid in kept:
            items = waiting.pop(tid, None)
            if items:
                trace_hex = tid.hex()
                for owner, bucket, value, span_id, at in items:
                    owner.write_exemplar(bucket, Exemplar({"trace_id": trace_hex, "span_id": span_id.hex()}, value, at))
                written += len(items)
        if written:
            self._written.inc(written)
        if forgotten or written:
            self._gauge.set(len(waiting))
