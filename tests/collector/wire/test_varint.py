"""Varints and field headers."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.wire import WireError, encode_varint, frame, iter_fields, read_field, read_varint


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**63, 2**64 - 1])
def test_varint_round_trip(n: int) -> None:
    data = b"\xff" + encode_varint(n) + b"\xff"
    assert read_varint(data, 1) == (n, len(data) - 1)


def test_truncated_varints_raise() -> None:
    with pytest.raises(WireError):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(WireError):
        read_varint(b"\xff" * 11, 0)  # past 64 bits
    with pytest.raises(WireError):
        read_varint(b"\x08", 1)  # nothing left: a length or value missing at the end of the data
    with pytest.raises(WireError):
        read_field(b"\x0a", 0, 1)  # a length-delimited tag with no length
    with pytest.raises(WireError):
        read_field(b"\x0a\x80", 0, 2)  # a two-byte length cut after its first byte


def test_read_field_reads_every_wire_type_and_any_tag() -> None:
    span = Span(trace_id=b"\1" * 16, kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=5, flags=7,
                dropped_events_count=3, name="x" * 300).SerializeToString()
    span += encode_varint(2**20 << 3 | 2) + b"\x00"  # an empty unknown field with a four-byte tag
    fields = []
    pos = 0
    while pos < len(span):
        number, wire_type, start, end = read_field(span, pos, len(span))
        fields.append((number, wire_type, span[start:end]))
        pos = end
    assert fields == [
        (1, 2, b"\1" * 16), (5, 2, b"x" * 300), (6, 0, b"\x02"), (7, 1, (5).to_bytes(8, "little")),
        (12, 0, b"\x03"), (16, 5, (7).to_bytes(4, "little")), (2**20, 2, b""),
    ]
    with pytest.raises(WireError):
        read_field(b"\x0a\x05abc", 0, 5)  # runs past its message
    with pytest.raises(WireError):
        read_field(b"\x0b", 0, 1)  # a group: no known size


def test_iter_fields_takes_one_byte_tags_only() -> None:
    data = frame(0x0A, b"abc") + b"\x10\x96\x01" + frame(0x1A, b"")
    assert [(t, data[s:e]) for t, _, s, e in iter_fields(data, 0, len(data))] == [
        (0x0A, b"abc"), (0x10, b"\x96\x01"), (0x1A, b"")]
    with pytest.raises(WireError):
        list(iter_fields(b"\x82\x01\x00", 0, 3))
    with pytest.raises(WireError):
        list(iter_fields(frame(0x0A, b"abc"), 0, 4))  # a field running past its container
