"""The walk's two indexes agree: from the wire bytes (decoding only spans that may be in error) and from
every span decoded. Random traces cover what each index must handle: orphans, cycles, duplicate ids,
CLIENT leaves with and without a server side, ``error`` attributes, exception events, several origins,
trace states, annotation and what the trace sends afterwards."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from collector.model import Trace
from pipelines.root_cause.annotate import annotate
from pipelines.root_cause.walk import SignalMatcher, WalkResult, find_failures, write_back
from tests.pipelines.root_cause import CLIENT, ERROR, INTERNAL, OK, SERVER, TRACE_ID, sid, span, trace

SERVICES = ("frontend", "checkout", "payment", "db")


def random_trace(rnd: random.Random, duplicates: bool) -> Trace:
    n = rnd.randint(1, 14)
    groups: dict[str, list[Span]] = {}
    for i in range(1, n + 1):
        parent = rnd.choice([None, rnd.randint(1, n), rnd.randint(1, n), n + 5])  # root, in trace, orphan
        attrs: dict[str, object] = {"http.route": "/x", "retries": rnd.choice([1, 2, 3])}
        if rnd.random() < 0.2:
            attrs["error"] = rnd.choice([True, False, "true", "TRUE", "no", 1])
        if rnd.random() < 0.3:
            attrs["peer.service"] = rnd.choice(["", "orders-db", "cache"])
        if rnd.random() < 0.2:
            attrs["exception.message"] = "boom"
        if rnd.random() < 0.1:
            attrs["rootcause.service"] = "stale"  # replaced, not repeated
        events = [("exception", {"exception.type": "E", "exception.message": f"m{i}"})] if rnd.random() < 0.2 else []
        s = span(
            i if not (duplicates and rnd.random() < 0.3) else rnd.randint(1, n), f"op{i}", parent,
            status=rnd.choice([0, 0, OK, ERROR, ERROR]), kind=rnd.choice([INTERNAL, CLIENT, SERVER]),
            end=rnd.randint(1, 5) * 100, attrs=attrs, message=rnd.choice(["", "failed"]), events=events,
        )
        if rnd.random() < 0.1:
            s.trace_state = "k=v"
        if rnd.random() < 0.1:
            s.flags = 0x101
        groups.setdefault(rnd.choice(SERVICES), []).append(s)
    return trace(*groups.items())


def sent_spans(t: Trace) -> list[tuple[bytes, list[Span]]]:
    return [(o.resource_fields, list(ScopeSpans.FromString(bytes(c)).spans)) for o, c in t.wire_chunks()]


def walk_and_annotate(t: Trace, from_wire: bool, signals: tuple[SignalMatcher, ...]) -> WalkResult:
    result = find_failures(t, signals, max_root_causes=3, max_path=4, from_wire=from_wire)
    # As the processor does: the wire index says which signal spans may hold stale rootcause.* attributes.
    for failure, s, old in zip(result.failures, result.signal_spans, result.stale, strict=True):
        annotate(s, failure.primary, old)
    write_back(result)
    return result


@pytest.mark.parametrize("duplicates", [False, True])
@pytest.mark.parametrize("signals", [(), (SignalMatcher("checkout", service="checkout"),)])
def test_wire_and_decoded_index_agree(duplicates: bool, signals: tuple[SignalMatcher, ...]) -> None:
    rnd = random.Random(7)
    from_wire = 0
    for _ in range(300):
        state = rnd.getstate()
        a = random_trace(rnd, duplicates)
        rnd.setstate(state)
        b = random_trace(rnd, duplicates)
        ra = walk_and_annotate(a, True, signals)
        rb = walk_and_annotate(b, False, signals)
        assert ra.failures == rb.failures
        assert ra.signals_skipped == rb.signals_skipped
        assert sent_spans(a) == sent_spans(b)
        assert a.byte_size == b.byte_size
        assert a.error_status in (None, any(s.status.code == ERROR for _, s in b.iter_spans()))
        if ra.walk is not None and ra.walk.chunks is not None:
            from_wire += 1
    assert from_wire > (20 if duplicates else 50), from_wire  # the wire index did much of the work


def test_error_status_recorded_for_the_stages_after() -> None:
    t = trace(("a", [span(1, "root", status=ERROR), span(2, "child", 1, attrs={"retries": 2})]))
    find_failures(t)
    assert t.error_status is True
    t = trace(("a", [span(1, "root", attrs={"error": True, "retries": 2})]))
    (failure,) = find_failures(t).failures
    assert failure.primary.span_name == "root" and t.error_status is False


def test_annotation_splices_only_the_signal_span() -> None:
    others = [span(n, f"op{n}", 1, attrs={"k": "v" * n}) for n in range(2, 6)]
    t = trace(("a", [span(1, "root", status=ERROR, message="bad"), *others]))
    before = dict(t.wire_chunks())
    result = walk_and_annotate(t, True, ())
    assert result.walk is not None and result.walk.chunks is not None
    ((origin, chunk),) = t.wire_chunks()
    spans = list(ScopeSpans.FromString(bytes(chunk)).spans)
    assert spans[1:] == others
    assert {kv.key for kv in spans[0].attributes} >= {"rootcause.service", "rootcause.path"}
    assert spans[0].status.message == "bad"
    assert bytes(chunk).endswith(bytes(before[origin])[-sum(len(s.SerializeToString()) + 2 for s in others):])
    assert t.byte_size == len(chunk)
    assert spans[0].trace_id == TRACE_ID and spans[0].span_id == sid(1)


def test_id_lookup_inside_short_spans() -> None:
    # The trace id holds "22 08 <the leaf's id>", which looks like a parent field pointing at the leaf, and
    # the last span is only its two ids (28 bytes): the lookup reads no further than each span's end.
    tid = b"\x22\x08" + sid(4) + bytes(6)
    leaf = Span(trace_id=tid, span_id=sid(4), name="INSERT", kind=CLIENT, end_time_unix_nano=5)
    leaf.status.code = ERROR  # type: ignore[assignment]
    leaf.attributes.add(key="peer.service").value.string_value = "orders-db"
    bare = Span(trace_id=tid, span_id=sid(9))
    results = []
    for from_wire in (True, False):
        t = trace(("payment", [leaf, bare]))
        results.append(find_failures(t, from_wire=from_wire).failures)
    assert results[0] == results[1]
    assert results[0][0].primary.service == "orders-db" and results[0][0].primary.blamed_callee
