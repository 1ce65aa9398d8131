"""The compiled request check (collector.wire.certainly_valid) against protobuf's own decoding.

The one property that matters: whenever the check says "certainly valid", protobuf decodes the bytes
without error. Everything it does not take goes to protobuf, so saying "not certain" too often costs only
time; the tests also show that it takes the requests real clients send, so the fast path is used.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.loadgen import Generator, load_topology
from bench.reference import ReferenceLoad
from collector.wire import _jit, certain_span_count, certainly_valid, encode_varint, load_compiled
from tests.collector.wire.support import random_request
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def _compiled() -> None:
    assert load_compiled(), "numba is part of the test environment: the compiled check must load"
    assert _jit._validator is not None


def protobuf_accepts(data: bytes) -> bool:
    try:
        ExportTraceServiceRequest.FromString(data)
    except DecodeError:
        return False
    return True


def check(data: bytes) -> bool:
    """certainly_valid, asserting the property: True only for what protobuf accepts."""
    certain = certainly_valid(data)
    if certain:
        assert protobuf_accepts(data), data.hex()
    return certain


def request_with(span: Span) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.append(span)
    return req


def one_span(**fields: object) -> Span:
    fields.setdefault("name", "op")
    return Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, **fields)  # type: ignore[arg-type]


def span_entry_request(span_bytes: bytes) -> bytes:
    """A request of one resource, one scope and one span whose bytes are given as they are."""
    ss = b"\x12" + encode_varint(len(span_bytes)) + span_bytes
    rs = b"\x12" + encode_varint(len(ss)) + ss
    return b"\x0a" + encode_varint(len(rs)) + rs


def test_takes_what_clients_send() -> None:
    """The reference payload, the load generator's requests and randomly built requests: all taken."""
    for data in ReferenceLoad().requests(5):
        assert check(data)
    for batch in Generator(load_topology(), seed=4).batches(200, count=5):
        assert check(batch.payload)
    rnd = random.Random(7)
    for _ in range(40):
        assert check(random_request(rnd, 0.3))
    assert check(b"")  # an empty request is valid


def test_every_field_type_of_the_schema() -> None:
    """Every field of Span, Event, Link, Status and every AnyValue kind, including a negative int (a
    ten-byte varint), nested arrays and lists, and entity refs on the resource."""
    value = AnyValue(array_value=ArrayValue(values=[
        AnyValue(int_value=-1), AnyValue(double_value=1.5), AnyValue(bool_value=True),
        AnyValue(bytes_value=b"\xff\x00"), AnyValue(kvlist_value=KeyValueList(values=[
            KeyValue(key="k", value=AnyValue(string_value="v"))])),
    ]))
    span = one_span(trace_state="a=b", parent_span_id=b"\x03" * 8, flags=0x301, kind=2,
                    start_time_unix_nano=2**63 + 5, end_time_unix_nano=2**64 - 1,
                    attributes=[KeyValue(key="x", value=value)], dropped_attributes_count=3,
                    dropped_events_count=1, dropped_links_count=2)
    span.events.add(time_unix_nano=7, name="exception", attributes=[KeyValue(key="a")], dropped_attributes_count=1)
    span.links.add(trace_id=b"\x05" * 16, span_id=b"\x06" * 8, trace_state="t", flags=1)
    span.status.code = 2  # type: ignore[assignment]
    span.status.message = "boom"
    req = request_with(span)
    rs = req.resource_spans[0]
    rs.schema_url = "https://example.com"
    rs.resource.dropped_attributes_count = 1
    ref = rs.resource.entity_refs.add(type="service", schema_url="s")
    ref.id_keys.extend(["service.name", "service.namespace"])
    rs.scope_spans[0].scope.name = "lib"
    rs.scope_spans[0].scope.version = "1"
    rs.scope_spans[0].scope.attributes.add(key="k")
    assert check(req.SerializeToString())


@pytest.mark.parametrize("text", ["caf\u00e9", "\u65e5\u672c", "\U0001f600"])
def test_non_ascii_strings_go_to_protobuf(text: str) -> None:
    """Valid UTF-8 beyond ASCII: not certain (protobuf checks it, and accepts it)."""
    for span in (one_span(name=text), one_span(attributes=[KeyValue(key=text)]),
                 one_span(attributes=[KeyValue(key="k", value=AnyValue(string_value=text))])):
        data = request_with(span).SerializeToString()
        assert not check(data)
        assert protobuf_accepts(data)


def test_non_ascii_bytes_outside_strings_are_fine() -> None:
    """High bytes in ids, times, byte values and lengths are not strings: still certain."""
    span = one_span(name="x" * 300, start_time_unix_nano=2**64 - 1,
                    attributes=[KeyValue(key="b", value=AnyValue(bytes_value=bytes(range(256))))])
    span.trace_id = b"\xff" * 16
    assert check(request_with(span).SerializeToString())


def test_invalid_utf8_is_not_taken() -> None:
    good = one_span(name="abcd").SerializeToString()
    bad = good.replace(b"abcd", b"ab\xc3\x28")
    data = span_entry_request(bad)
    assert not check(data)
    assert not protobuf_accepts(data)


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    """Unknown numbers (a newer proto's fields): varint, fixed64, length-delimited, fixed32. Taken, and
    protobuf accepts them too; a length-delimited unknown field may hold any bytes."""
    base = one_span().SerializeToString()
    for extra in (b"\xa8\x06\x96\x01",  # field 101, varint 150
                  b"\xa9\x06" + struct.pack("<q", -3),  # field 101, fixed64
                  b"\xaa\x06\x03\xff\xfe\x80",  # field 101, 3 bytes that are not UTF-8
                  b"\xad\x06" + struct.pack("<i", 9),  # field 101, fixed32
                  b"\xf8\xff\xff\xff\x0f\x01"):  # the largest field number, varint
        assert check(span_entry_request(base + extra)), extra.hex()


@pytest.mark.parametrize("extra", [
    b"\xab\x06\xac\x06",  # an unknown field as a group (wire type 3): left to protobuf
    b"\x28\x05",  # Span.name (5) as a varint: a wire type that does not match
    b"\x3a\x01\x00",  # start time (fixed64) as length-delimited
    b"\x35\x00\x00\x00\x00",  # kind (varint) as fixed32
    b"\x46\x01",  # wire type 6
    b"\x07",  # field 0, wire type 7
])
def test_unusual_wire_types_are_left_to_protobuf(extra: bytes) -> None:
    data = span_entry_request(one_span().SerializeToString() + extra)
    assert not check(data)


def test_malformed_bytes_are_not_taken() -> None:
    data = request_with(one_span(name="op", start_time_unix_nano=5)).SerializeToString()
    for cut in range(1, len(data)):
        check(data[:cut])  # a prefix can still be valid; each one the check takes, protobuf accepts
    span = one_span().SerializeToString()
    # Ten bytes but past 64 bits: protobuf drops the extra bits; the check leaves it to protobuf.
    assert not check(span_entry_request(span + b"\x30" + b"\xff" * 9 + b"\x02"))
    for bad in (span + b"\x30" + b"\xff" * 10 + b"\x01",  # an eleven-byte varint
                span + b"\x2a\x10ab",  # a length past the end of the span
                span + b"\x00\x00",  # field number 0
                span + b"\x3a"):  # a tag with no value
        assert not check(span_entry_request(bad))
        assert not protobuf_accepts(span_entry_request(bad))


def test_deep_nesting_is_left_to_protobuf() -> None:
    def nested(depth: int) -> bytes:
        value = AnyValue(string_value="leaf")
        for _ in range(depth):
            value = AnyValue(array_value=ArrayValue(values=[value]))
        return request_with(one_span(attributes=[KeyValue(key="deep", value=value)])).SerializeToString()

    assert check(nested(10))
    for depth in range(10, 30):  # up to the check's limit, each one it takes is one protobuf accepts
        check(nested(depth))
    deep = nested(40)  # past the check's 48 levels, within protobuf's 100
    assert not check(deep)
    assert protobuf_accepts(deep)


def test_random_mutations_never_certain_when_protobuf_refuses() -> None:
    """Byte changes, insertions, deletions and truncations of real requests: the check never says
    "certain" about a request protobuf refuses, and it never reads out of bounds (no crash)."""
    rnd = random.Random(11)
    base = [random_request(rnd, 0.3) for _ in range(6)] + list(ReferenceLoad().requests(2))
    base += [b.payload for b in Generator(load_topology(), seed=2).batches(30, count=3)]
    certain = refused = 0
    for _ in range(3000):
        data = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 3)):
            op = rnd.random()
            at = rnd.randrange(len(data))
            if op < 0.6:
                data[at] = rnd.randrange(256)
            elif op < 0.75:
                data.insert(at, rnd.randrange(256))
            elif op < 0.9:
                del data[at]
            else:
                del data[at:]
            if not data:
                data = bytearray(b"\x0a")
        raw = bytes(data)
        if check(raw):
            certain += 1
        elif not protobuf_accepts(raw):
            refused += 1
    assert certain > 300 and refused > 300, (certain, refused)


def test_off_switch_leaves_validation_to_protobuf() -> None:
    """``TRACETRIAGE_JIT_VALIDATE=0``: the compiled wire walk loads, the check takes nothing."""
    code = ("from collector.wire import certainly_valid, load_compiled; from bench.reference import ReferenceLoad; "
            "print(load_compiled(), certainly_valid(next(iter(ReferenceLoad().requests(1)))))")
    env = {**os.environ, "TRACETRIAGE_JIT_VALIDATE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "False"]


def test_long_tags_and_lengths() -> None:
    """Padded (non-canonical) varints: protobuf takes tags and lengths of up to five bytes and other
    varints of up to ten; so does the check."""
    span = one_span().SerializeToString()
    name5 = b"\xaa\x80\x80\x80\x00" + b"\x02op"  # Span.name (5, wire type 2) as a five-byte tag
    assert check(span_entry_request(span + name5))
    name6 = b"\xaa\x80\x80\x80\x80\x00" + b"\x02op"
    assert not check(span_entry_request(span + name6))
    assert not protobuf_accepts(span_entry_request(span + name6))
    for pad in range(10):  # a length of 2 in 1 to 10 bytes; a varint value of 1 in 1 to 10 bytes
        taken = check(span_entry_request(span + b"\x2a" + _varint(2, pad) + b"op"))
        assert taken == (pad <= 4)
        assert check(span_entry_request(span + b"\x30" + _varint(1, pad)))
    for pad in range(5, 10):
        assert not protobuf_accepts(span_entry_request(span + b"\x2a" + _varint(2, pad) + b"op"))


def _varint(value: int, pad: int) -> bytes:
    """``value`` as a varint, with ``pad`` extra continuation bytes (a non-canonical but valid form)."""
    out = bytearray(encode_varint(value))
    for _ in range(pad):
        out[-1] |= 0x80
        out.append(0)
    return bytes(out)


def _random_message(rnd: random.Random, table: Any, width: int, msg: int, depth: int) -> bytes:
    """Fields of message ``msg`` of the check's own table, encoded the odd ways a sender may: padded
    varints, unknown fields, wrong wire types, non-ASCII and invalid UTF-8 strings, now and then."""
    from collector.wire import _kernels as k

    known = [f for f in range(1, width) if table[msg * width + f] & 7]
    out = bytearray()
    for _ in range(rnd.randint(0, 6)):
        number = rnd.choice(known) if known and rnd.random() < 0.9 else rnd.choice([width + 3, 99, 2**29 - 1])
        entry = int(table[msg * width + number]) if number < width else 0
        kind = entry & 7
        wt = {k.VARINT_FIELD: 0, k.FIXED64_FIELD: 1, k.FIXED32_FIELD: 5}.get(kind, 2)
        if kind == k.UNKNOWN_FIELD or rnd.random() < 0.03:
            wt = rnd.choice([0, 1, 2, 5, 3, 4, 6])
        pad = rnd.choice([0] * 12 + [1, 3, 4, 5])
        out += _varint(number << 3 | wt, pad)
        if wt == 0:
            out += _varint(rnd.choice([0, 1, 300, 2**63, 2**64 - 1]), rnd.choice([0] * 8 + [1, 2]))
        elif wt == 1:
            out += rnd.randbytes(8)
        elif wt == 5:
            out += rnd.randbytes(4)
        elif wt == 2:
            if kind == k.MESSAGE_FIELD and depth < 8:
                body = _random_message(rnd, table, width, entry >> 3, depth + 1)
            elif kind == k.STRING_FIELD:
                body = rnd.choice([b"ascii", "caf\u00e9".encode(), b"\xc3\x28", b"", b"\xed\xa0\x80"])
            else:
                body = rnd.randbytes(rnd.randint(0, 20))
            out += _varint(len(body), rnd.choice([0] * 10 + [1, 4])) + body
    return bytes(out)


def test_structured_fuzz_never_certain_when_protobuf_refuses() -> None:
    """Requests built field by field from the schema with unusual encodings: every one the check takes,
    protobuf accepts; and the check takes a good share of them (it is not just saying no)."""
    table, width, _ = _jit.request_schema()
    rnd = random.Random(5)
    certain = accepted = 0
    for _ in range(3000):
        data = _random_message(rnd, table, width, 0, 0)
        if check(data):
            certain += 1
        if protobuf_accepts(data):
            accepted += 1
    assert certain > 300 and accepted > certain, (certain, accepted)


def test_span_count_when_certain() -> None:
    """certain_span_count (the Kafka receiver's count) equals count_spans of the decoded request."""
    from collector.model import count_spans

    rnd = random.Random(21)
    requests = [random_request(rnd, 0.3) for _ in range(30)] + list(ReferenceLoad().requests(2))
    requests += [b.payload for b in Generator(load_topology(), seed=6).batches(40, count=4)]
    requests.append(b"")
    for data in requests:
        n = certain_span_count(data)
        assert n is not None
        assert n == count_spans(ExportTraceServiceRequest.FromString(data))
    assert certain_span_count(request_with(one_span(name="caf\u00e9")).SerializeToString()) is None


@pytest.mark.parametrize("extra", [b"\x0a\x10" + b"\x07" * 16, b"\x12\x08" + b"\x07" * 8, b"\x22\x08" + b"\x07" * 8,
                                   b"\x0a\x02ab"])
def test_a_repeated_id_field_is_left_to_protobuf(extra: bytes) -> None:
    """Protobuf keeps the last of a repeated trace, span or parent span id; the split walks read the first.
    Not certain, so the receivers pass such a request on as protobuf read it."""
    span = one_span(parent_span_id=b"\x03" * 8).SerializeToString()
    assert check(span_entry_request(span))
    data = span_entry_request(span + extra)
    assert not check(data)
    assert protobuf_accepts(data)
    assert check(span_entry_request(span + b"\x1a\x01a\x1a\x01b"))  # a repeated trace state: no id, still certain
