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
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from collector import Capabilities, ConsumerError, Host, Settings, SpanBatch, TracesConsumer
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
    stop_serving,
)
from pipelines.spanmetrics.config import Config

OVERFLOW_LABELS = {"otel_metric_overflow": "true"}
_DEFAULT_LABELS = {"service.name": "service_name", "span.name": "span_name", "span.kind": "span_kind",
                   "status.code": "status_code"}
_CAPABILITIES = Capabilities()
SWEEP_EVERY = 1.0  # seconds between sweeps of expired series and pending exemplars


def label_name(attribute: str) -> str:
    """An attribute name as a Prometheus label name (what is not a letter, digit or ``_`` becomes ``_``)."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in attribute)
    return "key_" + out if out[:1].isdigit() else out


class Series:
    """One label set's calls and duration histogram."""

    __slots__ = ("calls", "histogram", "labels", "touched")

    def __init__(self, labels: dict[str, str], bounds: tuple[float, ...]) -> None:
        self.labels = labels
        self.calls = 0
        self.histogram = Histogram(bounds)
        self.touched = 0.0

    def write_exemplar(self, bucket: int, exemplar: Exemplar) -> None:
        self.histogram.set_exemplar(bucket, exemplar)


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
                                      "Batches that could not be decoded (passed on uncounted).", lab).labels(label)
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
        try:
            self.record(ExportTraceServiceRequest.FromString(batch.to_bytes()))
        except DecodeError as e:
            self._m_malformed.inc()
            batch.release()
            raise ConsumerError(f"{self._label}: malformed trace data: {e}") from e
        await self._next.consume_traces(batch)

    def record(self, request: ExportTraceServiceRequest) -> None:
        """Count every span of ``request``."""
        now = time.monotonic()
        wall = time.time()
        series_map = self._series
        to_unit = self._to_unit
        exemplars = self._exemplars
        wait = self._wait_for_decision
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
                    series.calls += 1
                    series.touched = now
                    duration = (span.end_time_unix_nano - span.start_time_unix_nano) * to_unit
                    bucket = series.histogram.observe(duration if duration > 0 else 0.0)
                    if exemplars is not None and id(series) not in noted:
                        noted.add(id(series))
                        if wait:
                            exemplars.add(span.trace_id, (series.write_exemplar, bucket, duration, span.span_id,
                                                          wall))
                        else:
                            series.write_exemplar(bucket, Exemplar({"trace_id": span.trace_id.hex(),
                                                                    "span_id": span.span_id.hex()}, duration, wall))

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
            self._m_overflow.inc()
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
        self.sweep()
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
        now = time.monotonic() if now is None else now
        expiration = self.config.metrics_expiration
        if expiration > 0:
            old = [k for k, s in self._series.items() if now - s.touched > expiration]
            for k in old:
                del self._series[k]
            if old:
                self._m_expired.inc(len(old))
            self._m_series.set(self.series_count)
        if self._exemplars is not None:
            self._exemplars.expire(now)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.sweep()

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
