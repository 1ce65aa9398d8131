"""Helpers to build traces for the root-cause tests: spans by small integer ids, grouped by service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.model import Trace, make_trace

TRACE_ID = bytes(range(1, 17))
ERROR = Status.STATUS_CODE_ERROR
OK = Status.STATUS_CODE_OK
CLIENT = Span.SPAN_KIND_CLIENT
SERVER = Span.SPAN_KIND_SERVER
INTERNAL = Span.SPAN_KIND_INTERNAL


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def value(v: object) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def span(
    n: int, name: str, parent: int | None = None, *, status: int = 0, kind: int = INTERNAL, end: int = 1000,
    start: int = 1, attrs: Mapping[str, object] | None = None, message: str = "",
    events: Sequence[tuple[str, Mapping[str, object]]] = (),
) -> Span:
    s = Span(
        trace_id=TRACE_ID, span_id=sid(n), parent_span_id=sid(parent) if parent is not None else b"", name=name,
        kind=kind, start_time_unix_nano=start, end_time_unix_nano=end,  # type: ignore[arg-type]
    )
    if status or message:
        s.status.code = status  # type: ignore[assignment]
        s.status.message = message
    for k, v in (attrs or {}).items():
        s.attributes.append(KeyValue(key=k, value=value(v)))
    for ev_name, ev_attrs in events:
        ev = s.events.add(name=ev_name, time_unix_nano=end)
        for k, v in ev_attrs.items():
            ev.attributes.append(KeyValue(key=k, value=value(v)))
    return s


def resource(service: str, **attrs: object) -> Resource:
    r = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    for k, v in attrs.items():
        r.attributes.append(KeyValue(key=k.replace("_", "."), value=value(v)))
    return r


def trace(*groups: tuple[str | Resource, Sequence[Span]]) -> Trace:
    return make_trace([(resource(g) if isinstance(g, str) else g, spans) for g, spans in groups])
