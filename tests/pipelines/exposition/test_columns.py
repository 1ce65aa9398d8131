"""The compiled column walk's attribute values: a wanted key is found whatever the order of a KeyValue's
fields, a key repeated in one KeyValue counts as protobuf reads it (the last), and keys no one wants are
passed over."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines.exposition.columns import SpanWalk

pytestmark = pytest.mark.skipif(not SpanWalk.load(), reason="numba is not installed")


def frame(field: int, payload: bytes) -> bytes:
    n, size = len(payload), b""
    while n >= 0x80:
        size += bytes([n & 0x7F | 0x80])
        n >>= 7
    return bytes([field << 3 | 2]) + size + bytes([n]) + payload


def request(attributes: list[bytes]) -> bytes:
    """One CLIENT span with ``http.route`` and then the given KeyValue entries (attributes, field 9), encoded
    by hand, in one ScopeSpans of one ResourceSpans."""
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="call", kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=1, end_time_unix_nano=2)
    span.attributes.append(KeyValue(key="http.route", value=AnyValue(string_value="/cart")))
    span_bytes = span.SerializeToString() + b"".join(frame(9, kv) for kv in attributes)
    return frame(1, frame(2, frame(2, span_bytes)))  # request.resource_spans.scope_spans.spans


def value(walk: SpanWalk, data: bytes, k: int) -> str | None:
    c = walk.columns(data, 1)
    assert c is not None and c.n == 1
    at, length = int(c.attrs[0, 2 * k]), int(c.attrs[0, 2 * k + 1])
    return None if at < 0 else c.text(at, length)


def string(text: str) -> bytes:
    return frame(1, text.encode())


@pytest.mark.parametrize(("attributes", "want"), [
    ([frame(1, b"db.name") + frame(2, string("orders"))], "orders"),  # as encoders write it
    ([frame(2, string("orders")) + frame(1, b"db.name")], "orders"),  # value first
    ([frame(1, b"host") + frame(2, string("no")) + frame(1, b"db.name")], "no"),  # the last key is db.name
    ([frame(1, b"db.name") + frame(2, string("a")) + frame(1, b"peer.x")], None),  # the last key is another
    ([frame(1, b"http.url") + frame(2, string("x"))], None),
    ([frame(1, b"host") + frame(2, string("x")), frame(1, b"db.name") + frame(2, string("b"))], "b"),
])
def test_a_wanted_value_is_found_as_protobuf_reads_it(attributes: list[bytes], want: str | None) -> None:
    data = request(attributes)
    parsed = ExportTraceServiceRequest.FromString(data).resource_spans[0].scope_spans[0].spans[0]
    by_protobuf = {kv.key: kv.value.string_value for kv in parsed.attributes}
    assert by_protobuf.get("db.name") == want
    walk = SpanWalk(("db.name", "peer.service"), Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_PRODUCER, hash_names=False)
    assert value(walk, data, 0) == want


def varint_field(field: int, value: int) -> bytes:
    return bytes([field << 3, value])


@pytest.mark.parametrize(("kinds_before", "kinds_after", "want"), [
    ((Span.SPAN_KIND_CLIENT,), (), "orders"),  # as encoders write it: the kind, then the attributes
    ((), (Span.SPAN_KIND_CLIENT,), "orders"),  # the kind after the attributes
    ((), (Span.SPAN_KIND_SERVER,), None),
    ((Span.SPAN_KIND_SERVER,), (Span.SPAN_KIND_CLIENT,), "orders"),  # the last kind counts
    ((Span.SPAN_KIND_CLIENT,), (Span.SPAN_KIND_SERVER,), None),
])
def test_the_kind_decides_whatever_its_place(kinds_before: tuple[int, ...], kinds_after: tuple[int, ...],
                                             want: str | None) -> None:
    """A span's wanted attributes are read only for the kinds asked for: the span's kind as protobuf reads it
    (the last kind field), before or after its attributes."""
    head = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="call").SerializeToString()
    attribute = frame(9, frame(1, b"db.name") + frame(2, string("orders")))
    body = (head + b"".join(varint_field(6, k) for k in kinds_before) + attribute
            + b"".join(varint_field(6, k) for k in kinds_after))
    data = frame(1, frame(2, frame(2, body)))
    parsed = ExportTraceServiceRequest.FromString(data).resource_spans[0].scope_spans[0].spans[0]
    assert (parsed.attributes[0].value.string_value if parsed.kind == Span.SPAN_KIND_CLIENT else None) == want
    walk = SpanWalk(("db.name",), Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_PRODUCER, hash_names=False)
    assert value(walk, data, 0) == want
    c = walk.columns(data, 1)
    assert c is not None and c.with_attributes == (want is not None)
