"""Builders for traces used by the tail_sampling tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.config import decode
from collector.model import Trace, make_trace

TRACE_ID = bytes.fromhex("000000000000000052969a8955571a3f")
MS = 1_000_000
T0 = 1_600_000_000 * 1_000_000_000


def value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=v)


def attrs(d: Mapping[str, Any] | None) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in (d or {}).items()]


def span(start_ms: float = 0, end_ms: float = 1, *, status: int = Status.STATUS_CODE_UNSET,
         attributes: Mapping[str, Any] | None = None, trace_state: str = "", flags: int = 0,
         trace_id: bytes = TRACE_ID, span_id: bytes = b"\1" * 8, parent: bytes = b"") -> Span:
    return Span(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name="op",
        start_time_unix_nano=T0 + int(start_ms * MS), end_time_unix_nano=T0 + int(end_ms * MS),
        status=Status(code=cast(Any, status)), attributes=attrs(attributes), trace_state=trace_state, flags=flags,
    )


def trace(*spans: Span, resource: Mapping[str, Any] | None = None) -> Trace:
    """One trace of ``spans`` sharing one resource (no spans: an empty trace)."""
    if not spans:
        return make_trace([])
    return make_trace([(Resource(attributes=attrs(resource)), list(spans))])


def trace_groups(groups: Sequence[tuple[Mapping[str, Any], Sequence[Span]]]) -> Trace:
    return make_trace([(Resource(attributes=attrs(r)), list(s)) for r, s in groups])


def cfg(cls: type[Any], **raw: Any) -> Any:
    """A policy block config decoded (and validated) from keyword arguments."""
    return decode(cls, raw)
