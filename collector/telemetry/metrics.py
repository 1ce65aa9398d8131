"""Self-telemetry: one Prometheus registry per service, with the OTel Collector's metric names.

Components ask :class:`Telemetry` for counters, gauges and histograms by name; asking twice returns the
same metric, so factories may be called for several pipelines. Everything is counted per batch, never
per span.

The exposition is the OTel Collector's: no ``_created`` series (prometheus_client adds one to every
counter and histogram; they are left out of this registry's output only, so another registry in the
process is not affected), and a ``target_info`` series carrying the ``service.telemetry.resource``.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

M = TypeVar("M", Counter, Gauge, Histogram)


class Telemetry:
    """Holds the service's metrics registry and the standard pipeline metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Any] = {}
        self.registry.register(_ProcessCollector())
        # Receivers (labels: receiver id, transport).
        self.receiver_accepted_spans = self.counter(
            "otelcol_receiver_accepted_spans",
            "Number of spans successfully pushed into the pipeline.",
            ("receiver", "transport"),
        )
        self.receiver_refused_spans = self.counter(
            "otelcol_receiver_refused_spans",
            "Number of spans that could not be pushed into the pipeline.",
            ("receiver", "transport"),
        )
        # Processors (labels: processor id, pipeline id).
        self.processor_incoming_items = self.counter(
            "otelcol_processor_incoming_items",
            "Number of items passed to the processor.",
            ("processor", "pipeline", "otel_signal"),
        )
        self.processor_outgoing_items = self.counter(
            "otelcol_processor_outgoing_items",
            "Number of items emitted from the processor.",
            ("processor", "pipeline", "otel_signal"),
        )
        # Exporters (label: exporter id).
        self.exporter_sent_spans = self.counter(
            "otelcol_exporter_sent_spans",
            "Number of spans successfully sent to destination.",
            ("exporter",),
        )
        self.exporter_send_failed_spans = self.counter(
            "otelcol_exporter_send_failed_spans",
            "Number of spans in failed attempts to send to destination (dropped after retries).",
            ("exporter",),
        )
        self.exporter_enqueue_failed_spans = self.counter(
            "otelcol_exporter_enqueue_failed_spans",
            "Number of spans failed to be added to the sending queue (refused to the sender).",
            ("exporter",),
        )
        self.exporter_queue_size = self.gauge(
            "otelcol_exporter_queue_size", "Current number of batches in the sending queue.", ("exporter",)
        )
        self.exporter_queue_capacity = self.gauge(
            "otelcol_exporter_queue_capacity", "Fixed capacity of the sending queue, in batches.", ("exporter",)
        )

    def _get(self, kind: type[M], name: str, doc: str, labels: Sequence[str], **kw: Any) -> M:
        existing = self._metrics.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise ValueError(f"metric {name} already registered as {type(existing).__name__}")
            return existing
        metric = kind(name, doc, tuple(labels), registry=self.registry, **kw)
        self._metrics[name] = metric
        return metric

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return self._get(Counter, name, doc, labels)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return self._get(Gauge, name, doc, labels)

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] | None = None
    ) -> Histogram:
        if buckets is None:
            return self._get(Histogram, name, doc, labels)
        return self._get(Histogram, name, doc, labels, buckets=tuple(buckets))

    def set_resource(self, attributes: Mapping[str, str]) -> None:
        """The ``target_info`` series: one label per resource attribute (dots become underscores)."""
        self.registry.set_target_info({_label_name(k): v for k, v in attributes.items()} or None)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format, without ``_created`` series."""
        return generate_latest(cast(CollectorRegistry, _WithoutCreated(self.registry)))


_CREATED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _label_name(key: str) -> str:
    name = _LABEL_INVALID.sub("_", key)
    return "_" + name if name[:1].isdigit() else name


class _WithoutCreated:
    """A view of a registry whose counters, histograms and summaries have no ``_created`` sample."""

    __slots__ = ("_registry",)

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            if metric.type in _CREATED_TYPES:
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class _ProcessCollector(Collector):
    """Process metrics with the OTel Collector's names."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def collect(self) -> Iterator[GaugeMetricFamily]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        yield GaugeMetricFamily(
            "otelcol_process_uptime", "Uptime of the process in seconds.", value=time.monotonic() - self._start
        )
        yield GaugeMetricFamily(
            "otelcol_process_cpu_seconds", "Total CPU user and system time in seconds.",
            value=usage.ru_utime + usage.ru_stime,
        )
        yield GaugeMetricFamily(
            "otelcol_process_memory_rss", "Total physical memory (resident set size) in bytes.", value=rss_bytes()
        )


def rss_bytes() -> int:
    """Resident set size of this process, in bytes (Linux /proc, else peak RSS)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
