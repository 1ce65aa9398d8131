"""The data model: a Trace's exact ERROR-status check from the wire bytes; a SpanBatch's forms (bytes,
split by trace) kept and joined only when asked for."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from bench.reference import ReferenceLoad
from collector.model import SpanBatch, Trace, make_origin, make_trace
from collector.wire import SplitOptions, split_by_trace

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


def test_merged_batches_keep_the_split_and_join_bytes_only_when_asked() -> None:
    payloads = list(ReferenceLoad().requests(3))
    parts = [SpanBatch(payload=p, span_count=500, split=split_by_trace(p)) for p in payloads]
    merged = SpanBatch.concat(parts)
    assert merged.span_count == 1500 and sum(c.spans for c in merged.split()) == 1500
    assert merged.view().to_bytes() == b"".join(payloads) == merged.to_bytes()
    # Trace-buffer output (split only, no bytes) merges into a split-only batch whose bytes are built.
    built = SpanBatch.concat([SpanBatch(split=split_by_trace(p), span_count=500) for p in payloads])
    again = ExportTraceServiceRequest.FromString(built.to_bytes())
    assert sum(len(ss.spans) for rs in again.resource_spans for ss in rs.scope_spans) == 1500


def test_a_batch_is_split_with_its_own_options_and_keeps_them() -> None:
    """A batch left unsplit (the Kafka receiver's) is split with the options it was made with; merging,
    viewing, copying and cutting it keeps them."""
    from pipelines.batch.split import split_batch

    payloads = list(ReferenceLoad().requests(2))
    off = SplitOptions(error_hints=False)

    def all_maybe(batch: SpanBatch) -> bool:
        return all(ts.maybe_error for c in batch.split() for ts in c.by_trace.values())

    assert not all_maybe(SpanBatch.from_bytes(payloads[0], 500))  # the default: hints worked out
    assert all_maybe(SpanBatch.from_bytes(payloads[0], 500, off))
    merged = SpanBatch.concat([SpanBatch.from_bytes(p, 500, off) for p in payloads])
    for batch in (merged, merged.view(), merged.copy(), *split_batch(merged.copy(), 300)):
        assert batch.split_options is off
        assert all_maybe(batch)


def test_replace_origins_moves_spans_and_joins_origins_that_map_to_one() -> None:
    a = make_origin(Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="a"))]))
    b = make_origin(Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="b"))]))
    c = make_origin(Resource())
    tid = b"\1" * 16
    spans = [Span(trace_id=tid, span_id=bytes([i + 1]) * 8, name=f"s{i}") for i in range(3)]
    t = make_trace([(a, spans[:1]), (b, spans[1:])])
    t.groups()[0].scope_spans.spans[0].name = "changed"  # a change through groups() survives the move
    t.mark_modified()
    t.replace_origins(lambda o: c)
    assert list(t.chunks) == [c] and t.spans_of(c) == 3 and t.span_count == 3
    assert [s.name for _, s in t.iter_spans()] == ["changed", "s1", "s2"]
    u = make_trace([(a, spans[:1]), (b, spans[1:])])
    u.replace_origins(lambda o: {a: b, b: a}[o])
    assert u.spans_of(a) == 2 and u.spans_of(b) == 1


def test_a_trace_files_its_first_origin_in_slots_and_answers_as_with_a_dict() -> None:
    """Spans of the first origin are kept without a dict while the trace waits; every reader sees the same
    chunks, counts and bytes as before, and a second origin (or a stage asking for ``chunks``) makes the dict."""
    a = make_origin(Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="a"))]))
    b = make_origin(Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="b"))]))
    t = Trace(b"\x01" * 16, 0.0, 1.0, a, b"\x12\x01x", 1, 5, 9, False)
    t.add(a, memoryview(b"\x12\x01y"), 1, 3, 7, False)
    assert (t.span_count, t.byte_size, t.start, t.end, t.spans_of(a), t.spans_of(b)) == (2, 6, 3, 9, 2, 0)
    assert list(t.wire_chunks()) == [(a, bytearray(b"\x12\x01x\x12\x01y"))]
    t.add(b, b"\x12\x01z", 1, 4, 8, True)
    assert t.chunks == {a: bytearray(b"\x12\x01x\x12\x01y"), b: b"\x12\x01z"}
    assert (t.span_count, t.spans_of(a), t.spans_of(b), t.maybe_error) == (3, 2, 1, True)
    u = Trace(b"\x02" * 16, 0.0, 1.0, a, b"\x12\x01x", 1)
    assert u.chunks == {a: b"\x12\x01x"}  # asked for: made, and kept in step afterwards
    u.add(a, b"\x12\x01y", 1, 0, 0)
    assert u.chunks == {a: bytearray(b"\x12\x01x\x12\x01y")} and list(u.wire_chunks()) == list(u.chunks.items())
    empty = Trace(b"\x03" * 16, 0.0)
    assert empty.chunks == {} and list(empty.wire_chunks()) == [] and empty.spans_of(a) == 0


def test_singles_are_the_traces_held_in_two_slots_in_their_order() -> None:
    """Trace.singles: the traces whose one origin's bytes are held without a dict, with their origins and
    chunks, in order; a trace with a dict of chunks (two origins, or asked for) or decoded is among the others."""
    a, b = make_origin(Resource()), make_origin(Resource(attributes=[KeyValue(key="service.name",
                                                                           value=AnyValue(string_value="b"))]))
    framed = ScopeSpans(spans=[Span(trace_id=b"t" * 16, span_id=b"s" * 8)]).SerializeToString()
    plain = [Trace(bytes([i]) * 16, 0.0, origin=a if i % 2 else b, framed=framed, spans=1) for i in range(4)]
    two = Trace(b"2" * 16, 0.0, origin=a, framed=framed, spans=1)
    two.add(b, framed, 1, 0, 0)
    asked = Trace(b"d" * 16, 0.0, origin=a, framed=framed, spans=1)
    assert asked.chunks == {a: framed}  # (a dict made)
    decoded = Trace(b"x" * 16, 0.0, origin=b, framed=framed, spans=1)
    decoded.groups()
    singles, origins, chunks, others = Trace.singles([plain[0], two, plain[1], asked, plain[2], decoded, plain[3]])
    assert singles == plain and origins == [b, a, b, a] and chunks == [framed] * 4
    assert others == [two, asked, decoded]
    assert Trace.singles([]) == ([], [], [], [])
