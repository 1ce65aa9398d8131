"""Trace: the exact ERROR-status check from the wire bytes, and edits of a few spans' bytes."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from collector.traces import Trace, make_trace
from collector.wire import entries_containing, entry_span, span_entries

ERROR, OK = Status.STATUS_CODE_ERROR, Status.STATUS_CODE_OK


def span(n: int, status: int = 0, retries: int = 0, big: bool = False) -> Span:
    s = Span(trace_id=b"\1" * 16, span_id=n.to_bytes(8, "big"), name=f"op{n}", end_time_unix_nano=5)
    s.status.code = status  # type: ignore[assignment]
    if retries:
        s.attributes.append(KeyValue(key="retries", value=AnyValue(int_value=retries)))  # encodes 18 02 for 2
    if big:
        s.attributes.append(KeyValue(key="blob", value=AnyValue(string_value="x" * 20000)))
    return s


def trace_of(*groups: list[Span]) -> Trace:
    return make_trace([(Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=f"s{i}"))]),
                        spans) for i, spans in enumerate(groups)])


@pytest.mark.parametrize(("groups", "expected"), [
    ([[span(1), span(2, ERROR)]], True),
    ([[span(1)], [span(2, OK), span(3, ERROR, retries=2)]], True),
    ([[span(1, OK, retries=2), span(2, retries=2)]], False),  # the bytes 18 02, but in an attribute
    ([[span(1, big=True), span(2, ERROR, big=True)]], True),  # 3-byte span lengths: decoded whole
    ([[span(1, big=True, retries=2)]], False),
    ([[span(1, OK)]], False),
])
def test_has_error_status_reads_only_what_it_must(groups: list[list[Span]], expected: bool) -> None:
    t = trace_of(*groups)
    t.maybe_error = True
    assert t.has_error_status() is expected
    assert t.error_status is expected and not t.decoded
    d = trace_of(*groups)
    d.maybe_error = True
    d.groups()
    assert d.has_error_status() is expected  # from the decoded spans


def test_has_error_status_trusts_the_wire_hint_and_forgets_on_change() -> None:
    t = trace_of([span(1, ERROR)])
    t.maybe_error = False  # the receiver's wire walk says no span can have an ERROR status: believed
    assert t.has_error_status() is False
    t = trace_of([span(1)])
    origin = next(iter(t.chunks))
    t.add(origin, ScopeSpans(spans=[span(2, ERROR)]).SerializeToString(), 1, 0, 5)
    assert t.error_status is None and t.has_error_status() is True
    t.groups()[0].scope_spans.spans[1].status.code = OK  # type: ignore[assignment]
    t.mark_modified()
    assert t.has_error_status() is False


def test_span_entries_and_search() -> None:
    spans = [span(1), span(2, ERROR), span(3, retries=2), span(4)]
    data = ScopeSpans(spans=spans).SerializeToString()
    at = span_entries(data, canonical=True)
    assert at is not None and len(at) == 5 and at[-1] == len(data)
    assert [Span.FromString(entry_span(data, at, j)) for j in range(4)] == spans
    assert list(entries_containing(data, at, b"\x18\x02")) == [1, 2]
    assert span_entries(ScopeSpans(spans=[span(1, big=True)]).SerializeToString()) is None
    odd = Span(span_id=b"\2" * 8, trace_id=b"\1" * 16)  # span id before trace id on the wire
    raw = b"\x12\x08" + odd.span_id + b"\x0a\x10" + odd.trace_id + b"\x2a\x01x"
    framed = b"\x12" + bytes([len(raw)]) + raw
    assert span_entries(framed) == [0, len(framed)] and span_entries(framed, canonical=True) is None
