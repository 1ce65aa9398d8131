"""Spans that repeat an id field after the header the walks read: protobuf keeps the last ``trace_id``,
``span_id`` or ``parent_span_id``, so every walk must too (or raise InvalidSpanIds when protobuf's ids are
invalid). Found by test_properties.py: a bit flip in an attribute's tag (``4a``, field 9, to ``48``, a
varint) makes the attribute's key read as a 2-byte ``trace_id`` and its value as a 32-byte ``span_id``,
after the span's canonical ids; the walks read the span's first bytes only and passed it on as valid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collector.validate import remove_invalid_spans
from collector.wire import InvalidSpanIds, _jit, _split, frame, load_compiled, split_by_trace
from tests.collector.wire.test_properties import SpanSet, spans_of_request, spans_of_split

WALKS = ("compiled", "vectorized", "python")
_BLOB = Path(__file__).with_name("data") / "repeated_id_fields.hex"


@pytest.fixture(params=WALKS)
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The walk that goes first (the compiled one still hands a span it declines to the others)."""
    if request.param == "compiled":
        assert load_compiled(), "numba is part of the test environment"
    else:
        monkeypatch.setattr(_jit, "_kernel", None)
    monkeypatch.setattr(_split, "MIN_BYTES", 1 << 62 if request.param == "python" else 0)
    yield request.param


def span(n: int, attributes: list[KeyValue] | None = None) -> Span:
    return Span(trace_id=bytes([n + 1]) * 16, span_id=bytes([n + 1]) * 8, parent_span_id=bytes([0x70 + n]) * 8,
                name=f"op{n}", kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1_000 + n,
                end_time_unix_nano=2_000 + n, attributes=attributes or [KeyValue(key="a", value=AnyValue(int_value=n))])


def request(spans: list[bytes]) -> bytes:
    """A request of one resource and one scope holding the serialized ``spans``."""
    scope = ScopeSpans().SerializeToString() + b"".join(frame(0x12, s) for s in spans)  # framed by hand: spans
    rs = ResourceSpans(resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="s"))]))
    return frame(0x0A, rs.SerializeToString() + frame(0x12, scope))  # need not be valid


def as_protobuf_reads_it(data: bytes) -> SpanSet:
    """The spans protobuf reads, as :func:`spans_of_split` counts what a split filed (under its trace id)."""
    return spans_of_request(ExportTraceServiceRequest.FromString(data))


def flipped_attribute_span() -> bytes:
    """A canonical span whose attribute ``k2`` (a 30-byte bytes value) has its tag 4a flipped to 48: protobuf
    then reads field 9 as a varint (the length byte), ``0a 02 "k2"`` as a 2-byte trace_id and the AnyValue
    (``12 20 ...``) as a 32-byte span_id, after the canonical ids."""
    value = AnyValue(bytes_value=bytes(range(1, 31)))
    good = span(7, [KeyValue(key="k1", value=AnyValue(string_value="x")), KeyValue(key="k2", value=value),
                    KeyValue(key="k3", value=AnyValue(int_value=3))]).SerializeToString()
    at = good.index(b"\x4a\x26\x0a\x02k2")
    return good[:at] + b"\x48" + good[at + 1:]


def test_flipped_attribute_tag_reads_as_invalid_ids(walk: str) -> None:
    bad = flipped_attribute_span()
    parsed = Span.FromString(bad)
    assert (len(parsed.trace_id), len(parsed.span_id)) == (2, 32)  # what protobuf sees
    data = request([span(n).SerializeToString() for n in range(6)] + [bad])
    assert remove_invalid_spans(ExportTraceServiceRequest.FromString(data)).rejected == 1
    with pytest.raises(InvalidSpanIds):
        split_by_trace(data)


def test_a_repeated_trace_id_files_the_span_under_the_last(walk: str) -> None:
    """Valid ids either way: the span goes under the trace id protobuf reads (the last one)."""
    moved = span(3).SerializeToString() + b"\x0a\x10" + bytes([0x55]) * 16
    assert Span.FromString(moved).trace_id == bytes([0x55]) * 16
    data = request([span(n).SerializeToString() for n in range(6)] + [moved])
    chunks = split_by_trace(data)
    assert spans_of_split(chunks) == as_protobuf_reads_it(data)
    assert bytes([0x55]) * 16 in chunks[0].by_trace


@pytest.mark.parametrize("field", [b"\x12\x08" + b"\x09" * 8, b"\x22\x00", b"\x22\x08" + b"\x0b" * 8])
def test_later_span_and_parent_ids_win(walk: str, field: bytes) -> None:
    """A zero span id or a bad parent id that a later field replaces is valid for protobuf, and a later
    parent id decides whether the span is a root."""
    first = Span.FromString(span(2).SerializeToString())
    first.span_id = bytes(8) if field[0] == 0x12 else first.span_id
    first.parent_span_id = b"\x01\x02\x03" if field[0] == 0x22 else first.parent_span_id
    repeated = first.SerializeToString() + field
    data = request([span(n).SerializeToString() for n in range(6)] + [repeated])
    assert remove_invalid_spans(ExportTraceServiceRequest.FromString(data)).rejected == 0
    chunks = split_by_trace(data)
    assert spans_of_split(chunks) == as_protobuf_reads_it(data)
    roots = {tid: ts.has_root for c in chunks for tid, ts in c.by_trace.items()}
    assert roots[bytes([3]) * 16] is (field == b"\x22\x00")


def test_the_request_the_property_test_found(walk: str) -> None:
    """The mutated request (36 spans for protobuf, the last with a 2-byte trace id and a 32-byte span id)."""
    data = bytes.fromhex(_BLOB.read_text().strip())
    req = ExportTraceServiceRequest.FromString(data)
    assert sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans) == 36
    assert remove_invalid_spans(req).rejected == 1
    with pytest.raises(InvalidSpanIds):
        split_by_trace(data)


def test_ids_once_gives_the_same_split_of_bytes_protobuf_serialized(walk: str) -> None:
    """What the receivers pass (``certainly_valid`` accepted it, or protobuf serialized it) has each id
    once: skipping the check changes nothing there."""
    data = request([span(n).SerializeToString() for n in range(40)])
    once, checked = spans_of_split(split_by_trace(data, ids_once=True)), spans_of_split(split_by_trace(data))
    assert once == checked == as_protobuf_reads_it(data)
