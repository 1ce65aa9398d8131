"""Hand-built traces for the trace-test table tests: the e-commerce trace of Tracetest's selector docs
(docs/concepts/selectors: spans 1-11, "close order" down to "send message to users")."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace, make_trace
from pipelines.trace_tests.spans import TestSpan, TestTrace

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def span(n: int, parent: int, name: str, start_ms: float, dur_ms: float, *, kind: int = Span.SPAN_KIND_SERVER,
         error: bool = False, trace_id: bytes = TRACE_ID, **attrs: object) -> Span:
    s = Span(trace_id=trace_id, span_id=sid(n), parent_span_id=sid(parent) if parent else b"", name=name, kind=kind,
             start_time_unix_nano=T0 + int(start_ms * MS), end_time_unix_nano=T0 + int((start_ms + dur_ms) * MS))
    s.attributes.extend(kv(k.replace("__", "."), v) for k, v in attrs.items())
    if error:
        s.status.code = 2
    return s


# (span, service): attribute keys with dots are written with "__".
SHOP: list[tuple[Span, str]] = [
    (span(1, 0, "close order", 0, 100, **{"http.method": "POST"}), "cart-api"),
    (span(2, 1, "is product available", 1, 30, **{"http.method": "GET"}), "product-api"),
    (span(3, 2, "get product information", 2, 5, kind=Span.SPAN_KIND_CLIENT,
          **{"db.statement": "SELECT * FROM products", "db.system": "postgresql"}), "product-api"),
    (span(4, 2, "get user can access", 8, 10, **{"http.method": "GET", "http.status_code": 200}), "auth-api"),
    (span(5, 4, "get user auth information", 9, 3, kind=Span.SPAN_KIND_CLIENT,
          **{"db.statement": "SELECT * FROM users"}), "auth-api"),
    (span(6, 1, "purchase products", 40, 50, **{"http.method": "POST"}), "cart-api"),
    (span(7, 6, "get user can access", 41, 12, **{"http.method": "GET", "http.status_code": 403}), "auth-api"),
    (span(8, 7, "get user auth information", 42, 8, kind=Span.SPAN_KIND_CLIENT,
          **{"db.statement": "SELECT * FROM users"}), "auth-api"),
    (span(9, 6, "notify user", 60, 20, **{"http.method": "POST"}), "notification-api"),
    (span(10, 9, "send message to kafka", 61, 2, kind=Span.SPAN_KIND_PRODUCER,
          **{"messaging.system": "kafka"}), "notification-api"),
    (span(11, 10, "send message to users", 70, 1, kind=Span.SPAN_KIND_CONSUMER,
          **{"messaging.system": "kafka"}), "external-service"),
]


def resource(service: str) -> Resource:
    return Resource(attributes=[kv("service.name", service)])


def buffered(spans: list[tuple[Span, str]]) -> Trace:
    """A trace as the trace buffer holds it (wire bytes per resource)."""
    by_service: dict[str, list[Span]] = {}
    for s, service in spans:
        by_service.setdefault(service, []).append(s)
    return make_trace([(resource(svc), ss) for svc, ss in by_service.items()])


def view(spans: list[tuple[Span, str]] = SHOP, response: dict[str, object] | None = None) -> TestTrace:
    made = [TestSpan(s, {"service.name": service}) for s, service in spans]
    return TestTrace(TRACE_ID, made, response)  # type: ignore[arg-type]
