"""The ``spanmetrics`` processor: request, error and duration series per service, span name, kind and status
from every span, served for Prometheus at its own ``endpoint``.

It passes each batch on unchanged. Put before ``tail_sampling``, it counts every span, not only those of kept
traces; its exemplars still name only kept traces: each waits (:class:`PendingExemplars`) until the trace
buffer after it has decided its trace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from time import thread_time
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from collector import Capabilities, ConsumerError, Host, Settings, SpanBatch, TracesConsumer
from collector.wire import KIND, NAME_AT, NAME_LEN, RS, SPAN_AT, STATUS, TRACE_AT
from pipelines.exposition import (
    KIND_NAMES,
    STATUS_NAMES,
    Histogram,
    MetricsListener,
    PendingExemplars,
    bucket_labels,
    find_attribute,
    serve,
    service_name,
    span_stage_cpu_counter,
    stop_serving,
)
from pipelines.exposition.columns import SpanColumns, SpanWalk, compile_all
from pipelines.spanmetrics.config import Config

OVERFLOW_LABELS = {"otel_metric_overflow": "true"}
_DEFAULT_LABELS = {"service.name": "service_name", "span.name": "span_name", "span.kind": "span_kind",
                   "status.code": "status_code"}
_CAPABILITIES = Capabilities()
SWEEP_EVERY = 1.0  # seconds between sweeps of expired series and pending exemplars
# Exemplars a series has waiting for their traces' decisions at most; it files more as those are decided.
# (Each bucket shows only its newest, and filing one for each series of each request cost more than
# counting the spans.)
EXEMPLARS_WAITING = 16
MAX_SERVICES = 100_000  # service names given a code for the compiled path (cleared when full)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: (service, kind, status) -> 64 bits, one to one


def label_name(attribute: str) -> str:
    """An attribute name as a Prometheus label name (what is not a letter, digit or ``_`` becomes ``_``)."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in attribute)
    return "key_" + out if out[:1].isdigit() else out


class _Aggregation:
    """Scratch arrays of the compiled grouping of a request's spans (kept between requests, grown as needed)."""

    def __init__(self, rows: int, buckets: int) -> None:
        from pipelines.exposition._kernels import aggregate  # (imports numba: only once the walk is loaded)

        self.rows = rows
        self.table = np.empty(1 << (2 * rows - 1).bit_length(), dtype=np.int64)
        self.keys = np.empty(rows, dtype=np.uint64)
        self.first = np.empty(rows, dtype=np.int64)
        self.calls = np.empty(rows, dtype=np.int64)
        self.hist = np.empty((rows, buckets), dtype=np.int64)
        self.sums = np.empty(rows, dtype=np.float64)
        self.first_bucket = np.empty(rows, dtype=np.int64)
        self.first_value = np.empty(rows, dtype=np.float64)
        self._aggregate = aggregate

    def run(self, cols: np.ndarray, hashes: np.ndarray, codes: np.ndarray, parts: int, bounds: np.ndarray,
            to_unit: float) -> int:
        return int(self._aggregate(cols, hashes, codes, parts, bounds, to_unit, self.table, self.keys, self.first,
                                   self.calls, self.hist, self.sums, self.first_bucket, self.first_value))


class _Held:
    """Calls counted on the compiled path and not yet added to their series: per series met since the last
    flush, a slot of summed calls, duration sums and bucket counts. Adding a request's counts is a few array
    operations, where adding them to each series (a Python call each) cost per label set and request."""

    SLOTS = 4096  # series held between flushes (more when one request has more label sets)

    def __init__(self, buckets: int) -> None:
        self.index: dict[int, int] = {}  # label-set hash -> slot
        self.series: list[Series] = []
        self._by_series: dict[int, int] = {}  # id(series) -> slot
        self._size(self.SLOTS, buckets)

    def _size(self, slots: int, buckets: int) -> None:
        self.calls = np.zeros(slots, dtype=np.int64)
        self.sums = np.zeros(slots, dtype=np.float64)
        self.hist = np.zeros((slots, buckets), dtype=np.int64)

    def room(self, label_sets: int) -> bool:
        """Whether ``label_sets`` more fit (else flush, then :meth:`grow`)."""
        return len(self.series) + label_sets <= len(self.calls)

    def grow(self, label_sets: int) -> None:
        """Room for ``label_sets`` in the empty slots."""
        assert not self.series
        if label_sets > len(self.calls):
            self._size(label_sets, self.hist.shape[1])

    def add(self, key: int | None, series: Series) -> int:
        """The slot of ``series``, remembered for the label-set hash ``key`` (None: not remembered, as the
        overflow series' hashes are not: they are many and each is met again only by chance)."""
        slot = self._by_series.get(id(series))
        if slot is None:
            slot = self._by_series[id(series)] = len(self.series)
            self.series.append(series)
        if key is not None:
            self.index[key] = slot
        return slot

    def count(self, slots: list[int], calls: np.ndarray, sums: np.ndarray, hist: np.ndarray) -> None:
        at = np.array(slots, dtype=np.int64)  # (a slot twice when label sets overflowed into one series)
        np.add.at(self.calls, at, calls)
        np.add.at(self.sums, at, sums)
        np.add.at(self.hist, at, hist)

    def take(self) -> list[tuple[Series, int, np.ndarray, float]]:
        """(series, calls, bucket counts, duration sum) of every slot; the slots emptied."""
        n = len(self.series)
        out = list(zip(self.series, self.calls[:n].tolist(), self.hist[:n].copy(), self.sums[:n].tolist(),
                       strict=True))
        self.calls[:n] = 0
        self.sums[:n] = 0.0
        self.hist[:n] = 0
        self.series = []
        self.index = {}
        self._by_series = {}
        return out


class Series:
    """One label set's calls and duration histogram."""

    __slots__ = ("calls", "exemplars_waiting", "histogram", "labels", "touched")

    def __init__(self, labels: dict[str, str], bounds: tuple[float, ...]) -> None:
        self.labels = labels
        self.calls = 0
        self.histogram = Histogram(bounds)
        self.touched = 0.0
        self.exemplars_waiting = 0  # filed, their trace not yet decided: at most EXEMPLARS_WAITING

    def write_exemplar(self, bucket: int, exemplar: Exemplar) -> None:
        self.histogram.set_exemplar(bucket, exemplar)
        self.exemplar_forgotten()

    def exemplar_forgotten(self) -> None:
        if self.exemplars_waiting > 0:
            self.exemplars_waiting -= 1


class SpanMetricsProcessor:
    """See the module docstring."""

    def __init__(self, settings: Settings, config: Config, next_consumer: TracesConsumer) -> None:
        self._settings = settings
        self.config = config
        self._next = next_consumer
        self._label = label = str(settings.id)
        self._logger = settings.logger
        self._seconds = config.histogram.unit == "s"
        scale = 1.0 if self._seconds else 1000.0
        self._bounds = tuple(float(b) * scale for b in config.histogram.explicit.buckets)
        self._le = bucket_labels(self._bounds)
        self._to_unit = 1e-9 * scale  # nanoseconds -> the unit
        ns = config.namespace.replace(".", "_")
        prefix = ns + "_" if ns else ""
        self.calls_name = prefix + "calls"
        self.duration_name = prefix + "duration_" + ("seconds" if self._seconds else "milliseconds")
        excluded = set(config.exclude_dimensions)
        self._defaults = tuple(d for d in _DEFAULT_LABELS if d not in excluded)
        self._dims = tuple((d.name, label_name(d.name), d.default) for d in config.dimensions)
        self._series: dict[tuple[Any, ...], Series] = {}
        # The compiled path (numba): label sets by a 64-bit hash of (service, name, kind, status).
        self._walk = SpanWalk()
        # Compiled (or loaded from numba's cache) now, while the service builds, not on the first request.
        self._bounds_array = np.array(self._bounds, dtype=np.float64)
        self._by_hash: dict[int, Series] = {}
        self._service_codes: dict[str, int] = {}
        self._parts = (("service.name" in self._defaults) | ("span.name" in self._defaults) << 1
                       | ("span.kind" in self._defaults) << 2 | ("status.code" in self._defaults) << 3)
        self._agg: _Aggregation | None = None
        self._held = _Held(len(self._bounds) + 1)
        # (compiled, or loaded from numba's cache, now while the service builds: not on the first request)
        self._fast = not self._dims and compile_all()
        self._overflow: Series | None = None
        self._limit = config.limit
        t = settings.telemetry
        lab = ("processor",)
        self._m_overflow = t.counter("tracetriage_spanmetrics_overflow_spans",
                                     "Spans counted in the overflow series (aggregation_cardinality_limit reached).",
                                     lab).labels(label)
        self._m_series = t.gauge("tracetriage_spanmetrics_series", "Span metric series held.", lab).labels(label)
        self._m_expired = t.counter("tracetriage_spanmetrics_series_expired",
                                    "Series removed after metrics_expiration without an update.", lab).labels(label)
        self._m_malformed = t.counter("tracetriage_spanmetrics_malformed_batches",
                                      "Batches that could not be decoded (refused).", lab).labels(label)
        self._m_cpu = span_stage_cpu_counter(t).labels(label)
        ex = config.exemplars
        self._exemplars = (PendingExemplars(t, label, ex.max_pending_traces, ex.max_per_trace, ex.pending_timeout)
                           if ex.enabled else None)
        self._wait_for_decision = False
        self._host: Host | None = None
        self._listener: MetricsListener | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    @property
    def series_count(self) -> int:
        return len(self._series) + (self._overflow is not None)

    @property
    def endpoint_port(self) -> int | None:
        return self._listener.port if self._listener is not None else None

    # -- the span path ---------------------------------------------------------------------------------

    async def consume_traces(self, batch: SpanBatch) -> None:
        t0 = thread_time()
        try:
            data = batch.to_bytes()
            columns = self._walk.columns(data, batch.span_count) if self._fast else None
            if columns is not None:
                self.record_columns(columns)
            else:
                self.record(ExportTraceServiceRequest.FromString(data))
        except DecodeError as e:
            self._m_malformed.inc()
            batch.release()
            raise ConsumerError(f"{self._label}: malformed trace data: {e}") from e
        finally:
            self._m_cpu.inc(thread_time() - t0)
        await self._next.consume_traces(batch)

    def record(self, request: ExportTraceServiceRequest) -> None:
        """Count every span of ``request``."""
        now = time.monotonic()
        wall = time.time()
        series_map = self._series
        to_unit = self._to_unit
        exemplars = self._exemplars
        plain = self._defaults == tuple(_DEFAULT_LABELS) and not self._dims
        noted: set[int] = set()  # series given an exemplar in this batch (one each)
        for rs in request.resource_spans:
            resource_attributes = rs.resource.attributes
            service = service_name(resource_attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if plain:
                        key: tuple[Any, ...] = (service, span.name, span.kind, span.status.code)
                    else:
                        key = self._key(service, span, resource_attributes)
                    series = series_map.get(key)
                    if series is None:
                        series = self._new_series(key)
                        if series is self._overflow:
                            self._m_overflow.inc()
                    series.calls += 1
                    series.touched = now
                    duration = (span.end_time_unix_nano - span.start_time_unix_nano) * to_unit
                    bucket = series.histogram.observe(duration if duration > 0 else 0.0)
                    if (exemplars is not None and id(series) not in noted
                            and series.exemplars_waiting < EXEMPLARS_WAITING):
                        noted.add(id(series))
                        self._exemplar(series, bucket, duration, span.trace_id, span.span_id, wall)

    def record_columns(self, c: SpanColumns) -> None:
        """Count every span of a request read into columns: the spans are grouped by label set in compiled
        code, and Python works once per label set, not per span."""
        n = c.n
        if n == 0:
            return
        agg = self._aggregation(n)
        codes = np.array([self._service_code(s) for s in c.services], dtype=np.int64)
        k = agg.run(c.cols, c.hashes, codes, self._parts, self._bounds_array, self._to_unit)
        by_hash = self._by_hash
        exemplars = self._exemplars
        held = self._held
        if not held.room(k):
            self._flush()
            held.grow(k)
        index = held.index
        keys = agg.keys[:k].tolist()
        slots = []
        for i, key in enumerate(keys):
            slot = index.get(key)
            if slot is None:
                series = by_hash.get(key)
                if series is None:
                    series = self._series_of(c, int(agg.first[i]), key)
                slot = held.add(None if series is self._overflow else key, series)
            slots.append(slot)
        held.count(slots, agg.calls[:k], agg.sums[:k], agg.hist[:k])
        if exemplars is not None:
            wall = time.time()
            data = c.data
            first = agg.first[:k]
            trace_at = c.cols[first, TRACE_AT].tolist()
            span_at = c.cols[first, SPAN_AT].tolist()
            buckets = agg.first_bucket[:k].tolist()
            values = agg.first_value[:k].tolist()
            held_series = held.series
            for i, slot in enumerate(slots):
                series = held_series[slot]
                if series.exemplars_waiting >= EXEMPLARS_WAITING:
                    continue
                t, s = trace_at[i], span_at[i]
                if t >= 0 and s >= 0:
                    self._exemplar(series, buckets[i], values[i], data[t:t + 16], data[s:s + 8], wall)

    def _flush(self) -> None:
        """Count the calls held since the last flush into their series."""
        held = self._held
        if not held.series:
            return
        now = time.monotonic()
        overflow = self._overflow
        for series, calls, hist, total in held.take():
            series.calls += calls
            series.touched = now
            series.histogram.add(hist, total, calls)
            if series is overflow:
                self._m_overflow.inc(calls)

    def _aggregation(self, rows: int) -> _Aggregation:
        agg = self._agg
        if agg is None or agg.rows < rows:
            agg = self._agg = _Aggregation(max(rows, 512), len(self._bounds) + 1)
        return agg

    def _series_of(self, c: SpanColumns, f: int, key: int) -> Series:
        """The series of a label-set hash first met at span row ``f`` (remembered unless it overflowed)."""
        row = c.cols[f]
        parts: list[Any] = []
        for d in self._defaults:
            if d == "service.name":
                parts.append(c.services[int(row[RS])])
            elif d == "span.name":
                parts.append(c.text(int(row[NAME_AT]), int(row[NAME_LEN])))
            elif d == "span.kind":
                parts.append(int(row[KIND]))
            else:
                parts.append(int(row[STATUS]))
        label_key = tuple(parts)
        series = self._series.get(label_key)
        if series is None:
            series = self._new_series(label_key)
        if series is not self._overflow:
            if len(self._by_hash) >= 2 * self._limit:
                self._by_hash.clear()
            self._by_hash[key] = series
        return series

    def _service_code(self, service: str) -> int:
        code = self._service_codes.get(service)
        if code is None:
            if len(self._service_codes) >= MAX_SERVICES:
                self._flush()  # (a hash held may mean another service after this)
                self._service_codes.clear()
                self._by_hash.clear()
            code = self._service_codes[service] = len(self._service_codes) + 1
        return code

    def _exemplar(self, series: Series, bucket: int, value: float, trace_id: bytes, span_id: bytes,
                  wall: float) -> None:
        exemplars = self._exemplars
        assert exemplars is not None
        if self._wait_for_decision:
            if exemplars.add(trace_id, (series, bucket, value, span_id, wall)):
                series.exemplars_waiting += 1
        else:
            series.write_exemplar(bucket, Exemplar({"trace_id": trace_id.hex(), "span_id": span_id.hex()}, value,
                                                   wall))

    def _key(self, service: str, span: Any, resource_attributes: Any) -> tuple[Any, ...]:
        parts: list[Any] = []
        for d in self._defaults:
            if d == "service.name":
                parts.append(service)
            elif d == "span.name":
                parts.append(span.name)
            elif d == "span.kind":
                parts.append(span.kind)
            else:
                parts.append(span.status.code)
        for name, _, default in self._dims:
            value = find_attribute(name, span.attributes, resource_attributes)
            parts.append(default if value is None else value)
        return tuple(parts)

    def _new_series(self, key: tuple[Any, ...]) -> Series:
        if len(self._series) >= self._limit:
            if self._overflow is None:
                self._overflow = Series(dict(OVERFLOW_LABELS), self._bounds)
            return self._overflow
        labels: dict[str, str] = {}
        values = iter(key)
        for d in self._defaults:
            v = next(values)
            if d == "span.kind":
                v = KIND_NAMES[v] if 0 <= v < len(KIND_NAMES) else str(v)
            elif d == "status.code":
                v = STATUS_NAMES[v] if 0 <= v < len(STATUS_NAMES) else str(v)
            labels[_DEFAULT_LABELS[d]] = v
        for _, label, _ in self._dims:
            v = next(values)
            if v is not None:
                labels[label] = v
        series = self._series[key] = Series(labels, self._bounds)
        self._m_series.set(self.series_count)
        return series

    # -- exposition -----------------------------------------------------------------------------------

    def families(self) -> Iterable[Metric]:
        self.sweep()  # (counts what is held first)
        calls = Metric(self.calls_name, "Number of spans, per service, span name, kind and status.", "counter")
        duration = Metric(self.duration_name, "Span durations.", "histogram")
        everything = list(self._series.values())
        if self._overflow is not None:
            everything.append(self._overflow)
        hist_off = self.config.histogram.disable
        for s in everything:
            calls.add_sample(self.calls_name + "_total", s.labels, s.calls)
            if hist_off:
                continue
            h = s.histogram
            for bucket in h.cumulative(self._le):
                labels = dict(s.labels, le=bucket[0])
                duration.add_sample(self.duration_name + "_bucket", labels, bucket[1],
                                    exemplar=bucket[2] if len(bucket) > 2 else None)
            duration.add_sample(self.duration_name + "_count", s.labels, h.count)
            duration.add_sample(self.duration_name + "_sum", s.labels, h.sum)
        yield calls
        if not hist_off:
            yield duration

    def sweep(self, now: float | None = None) -> None:
        """Remove series not updated for ``metrics_expiration``; forget exemplars that waited too long."""
        self._flush()
        now = time.monotonic() if now is None else now
        expiration = self.config.metrics_expiration
        if expiration > 0:
            old = [k for k, s in self._series.items() if now - s.touched > expiration]
            for k in old:
                del self._series[k]
            if old:
                self._m_expired.inc(len(old))
                self._by_hash.clear()
            self._m_series.set(self.series_count)
        if self._exemplars is not None:
            self._exemplars.expire(now)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            t0 = thread_time()
            self.sweep()
            self._m_cpu.inc(thread_time() - t0)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        if self._host is not None:
            return
        self._host = host
        self._wait_for_decision = (self._settings.pipeline, self._settings.id) in host.decided_after
        if self._exemplars is not None and self._wait_for_decision:
            host.add_outcome_listener(self._exemplars)
        self._listener = await serve(host, self.config.endpoint, self, f"processor {self._label}", self._logger)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name=f"spanmetrics-sweep {self._label}")
        host.watch(self._sweeper, self._logger, self._label)

    async def shutdown(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        if self._host is not None and self._exemplars is not None:
            self._host.remove_outcome_listener(self._exemplars)
        listener, self._listener = self._listener, None
        await stop_serving(self._host, listener, self)
