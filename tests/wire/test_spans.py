"""Reading stored span entries without decoding them: where they start, which contain some bytes, a span's
ids, and framing a span again."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from collector.wire import entries_containing, entry_span, span_entries

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
