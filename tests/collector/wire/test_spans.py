"""Reading stored span entries without decoding them: where they start, which contain some bytes, a span's
ids, and framing a span again."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from collector.wire import (
    WireError,
    entries_containing,
    entries_maybe_in_error,
    entries_with_parent_id,
    entries_with_span_id,
    entry_span,
    frame,
    span_entries,
    span_entry,
    span_trace_id,
)

ERROR = Status.STATUS_CODE_ERROR


def span(n: int, status: int = 0, retries: int = 0, big: bool = False) -> Span:
    s = Span(trace_id=b"\1" * 16, span_id=n.to_bytes(8, "big"), name=f"op{n}", end_time_unix_nano=5)
    s.status.code = status  # type: ignore[assignment]
    if retries:
        s.attributes.append(KeyValue(key="retries", value=AnyValue(int_value=retries)))  # encodes 18 02 for 2
    if big:
        s.attributes.append(KeyValue(key="blob", value=AnyValue(string_value="x" * 20000)))
    return s


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


def test_entries_by_span_id_and_parent_id() -> None:
    """Found by their fields, not by bytes that look like them elsewhere (an id inside an attribute, a
    parent id behind a trace state)."""
    a, b, c = (bytes([n]) * 8 for n in (0xA, 0xB, 0xC))
    spans = [
        Span(trace_id=b"\1" * 16, span_id=a, name="root"),
        Span(trace_id=b"\1" * 16, span_id=b, parent_span_id=a, trace_state="k=v"),
        Span(trace_id=b"\1" * 16, span_id=c, parent_span_id=a,
             attributes=[KeyValue(key="x", value=AnyValue(bytes_value=b"\x12\x08" + b + b"\x22\x08" + c))]),
        Span(trace_id=b"\1" * 16, span_id=bytes(7) + b"\1", parent_span_id=c),
    ]
    data = ScopeSpans(spans=spans).SerializeToString()
    at = span_entries(data, canonical=True)
    assert at is not None
    assert entries_with_span_id(data, at, a) == [0]
    assert entries_with_span_id(data, at, b) == [1]  # not span 2, whose attribute holds b's id field
    assert entries_with_span_id(data, at, b"\7" * 8) == []
    assert entries_with_parent_id(data, at, a) == [1, 2]  # span 1's parent id follows its trace state
    assert entries_with_parent_id(data, at, c) == [3]  # not span 2's attribute
    assert entries_with_parent_id(data, at, b) == []


def test_span_entry_frames_a_span_as_scope_spans_do() -> None:
    for n in (1, 200, 20000):  # one-, two- and three-byte lengths
        s = Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="x" * n).SerializeToString()
        assert span_entry(s) == ScopeSpans(spans=[Span.FromString(s)]).SerializeToString()


def test_span_trace_id() -> None:
    canonical = Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="op").SerializeToString()
    assert span_trace_id(canonical, 0, len(canonical)) == b"\1" * 16
    odd = b"\x2a\x02op" + b"\x12\x08" + b"\2" * 8 + b"\x0a\x10" + b"\3" * 16  # the trace id last
    framed = b"xx" + odd + b"yy"
    assert span_trace_id(framed, 2, 2 + len(odd)) == b"\3" * 16
    no_id = b"\x2a\x02op"
    assert span_trace_id(no_id, 0, len(no_id)) == b""
    with pytest.raises(WireError):
        span_trace_id(b"\x2a\x09op", 0, 4)  # a name running past the span


def test_entries_maybe_in_error() -> None:
    """Spans with an ERROR status (written anywhere), then spans with an ``error`` attribute that may be
    true: every span in error is there; an int attribute of 2 (an ERROR code's bytes), ``error = false``,
    ``error.type`` and an event named ``error`` are not."""
    flagged = span(4)
    flagged.attributes.append(KeyValue(key="error", value=AnyValue(bool_value=True)))
    plain = span(6)
    plain.attributes.append(KeyValue(key="error", value=AnyValue(bool_value=False)))
    plain.attributes.append(KeyValue(key="error.type", value=AnyValue(string_value="true")))
    plain.events.add(name="error")
    spans = [span(1), span(2, ERROR), span(3, retries=2), flagged, span(5), plain]
    data = ScopeSpans(spans=spans).SerializeToString()
    at = span_entries(data)
    assert at is not None
    assert entries_maybe_in_error(data, at) == [1, 3]
    # The status before the attributes, as some encoders write it.
    first = spans[1].SerializeToString()
    status = frame(0x7A, spans[1].status.SerializeToString())
    assert first.endswith(status)
    moved = first[:28] + status + first[28:-len(status)]  # right after the ids
    data = ScopeSpans(spans=[spans[0]]).SerializeToString() + frame(0x12, moved)
    at = span_entries(data)
    assert at is not None and entries_maybe_in_error(data, at) == [1]
