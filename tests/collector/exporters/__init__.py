"""Shared helpers for the exporter tests: settings, sample batches, metric reads, free ports."""

from __future__ import annotations

import logging
import socket

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.component import ComponentID, Kind, Settings
from collector.model import SpanBatch
from collector.telemetry import Telemetry

FAST_RETRY = {"initial_interval": "10ms", "max_interval": "50ms", "max_elapsed_time": "5s"}


def make_settings(component_id: str = "otlp") -> Settings:
    cid = ComponentID.parse(component_id)
    return Settings(
        id=cid, kind=Kind.EXPORTER, telemetry=Telemetry(), logger=logging.getLogger(f"test.exporter.{cid}")
    )


def metric(settings: Settings, name: str) -> float:
    """A per-exporter metric value (counters by their base name, e.g. otelcol_exporter_sent_spans)."""
    labels = {"exporter": str(settings.id)}
    registry = settings.telemetry.registry
    value = registry.get_sample_value(name + "_total", labels)
    if value is None:
        value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def make_request(spans: int = 3, service: str = "checkout", seed: int = 1) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    ss = rs.scope_spans.add()
    ss.scope.name = "test-scope"
    ss.scope.version = "1.0"
    for i in range(spans):
        span = Span(
            trace_id=bytes([seed]) * 16,
            span_id=(seed * 1000 + i + 1).to_bytes(8, "big"),
            name=f"op-{i}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_500_000_000 + i,
        )
        if i == 0:
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="boom"))
        span.attributes.append(KeyValue(key="http.route", value=AnyValue(string_value="/pay")))
        span.attributes.append(KeyValue(key="retries", value=AnyValue(int_value=i)))
        ev = span.events.add()
        ev.name = "exception"
        ev.time_unix_nano = 1_700_000_000_100_000_000
        ev.attributes.append(KeyValue(key="exception.type", value=AnyValue(string_value="ValueError")))
        link = span.links.add()
        link.trace_id = b"\x0a" * 16
        link.span_id = b"\x0b" * 8
        ss.spans.append(span)
    return request


def make_batch(spans: int = 3, seed: int = 1) -> SpanBatch:
    request = make_request(spans, seed=seed)
    return SpanBatch.from_bytes(request.SerializeToString(), span_count=spans)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


__all__ = [
    "FAST_RETRY", "free_port", "make_batch", "make_request", "make_settings",
    "metric",
]
