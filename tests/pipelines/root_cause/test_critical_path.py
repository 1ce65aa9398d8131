"""The latency walk on hand-built traces: the critical path (sequential, parallel, overlapping children,
clock skew, gaps), blame and its ties, callee blame, signals and thresholds, and malformed traces (cycles,
duplicate ids, a 100,000-deep chain). Every case is explained from the wire bytes and from the decoded
spans, with the same result."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace
from pipelines.root_cause import LATENCY, Failure, SignalMatcher, find_slow, latency_cause
from pipelines.root_cause.span_index import SpanIndex
from tests.pipelines.root_cause import CLIENT, ERROR, SERVER, TRACE_ID, resource, sid, span, trace

MS = 1_000_000


def both(build: Callable[[], Trace], span_id: int = 1, threshold_ms: float = 0.0, wire: bool = True,
         **kw: object) -> Failure | None:
    """``latency_cause`` from the wire index and from the decoded spans (asserted equal); ``wire``: the
    trace's bytes allow the wire index (no duplicate ids)."""
    wire_trace = build()
    index = SpanIndex(wire_trace)
    index.build()
    assert (index.chunks is not None) is wire
    from_wire = latency_cause(wire_trace, sid(span_id), threshold_ms, **kw)  # type: ignore[arg-type]
    decoded = build()
    decoded.groups()
    from_decoded = latency_cause(decoded, sid(span_id), threshold_ms, **kw)  # type: ignore[arg-type]
    assert from_wire == from_decoded
    return from_wire


def explain(build: Callable[[], Trace], span_id: int = 1, wire: bool = True, **kw: object) -> Failure:
    f = both(build, span_id, wire=wire, **kw)
    assert f is not None
    return f


def steps(f: Failure) -> list[tuple[str, float]]:
    return [(s.span, s.self_time_ms) for s in f.critical_path]


def blamed(f: Failure) -> tuple[str, str, float]:
    return f.primary.service, f.primary.span_name, f.primary.self_time_ms


# -- the critical path -----------------------------------------------------------------------------------


def test_sequential_children_each_on_the_path() -> None:
    def build() -> Trace:
        return trace(("web", [span(1, "GET /", start=0, end=100 * MS, kind=SERVER),
                              span(2, "auth", 1, start=10 * MS, end=40 * MS),
                              span(3, "render", 1, start=40 * MS, end=90 * MS)]))

    f = explain(build)
    assert f.kind == LATENCY and f.duration_ms == 100.0 and f.threshold_ms == 0.0
    assert steps(f) == [("web:GET /", 20.0), ("web:auth", 30.0), ("web:render", 50.0)]
    assert blamed(f) == ("web", "render", 50.0)
    assert f.primary.depth == 1 and f.primary.path == ("web:GET /", "web:render")
    assert f.critical_path_length == 3 and f.root_causes == (f.primary,) and f.root_cause_count == 1
    assert (f.signal, f.signal_service, f.signal_span_name, f.signal_span_id) == ("root", "web", "GET /", sid(1))


def test_parallel_children_only_the_last_to_finish_is_on_the_path() -> None:
    def build() -> Trace:
        return trace(
            ("checkout", [span(1, "PlaceOrder", start=0, end=100 * MS, kind=SERVER),
                          span(2, "GetCart", 1, start=10 * MS, end=50 * MS, kind=CLIENT),
                          span(3, "GetQuote", 1, start=10 * MS, end=80 * MS, kind=CLIENT)]),
            ("cart", [span(4, "GetCart", 2, start=12 * MS, end=48 * MS, kind=SERVER)]),
            ("shipping", [span(5, "GetQuote", 3, start=12 * MS, end=78 * MS, kind=SERVER)]),
        )

    f = explain(build)
    # GetQuote ends last; GetCart ends after the cursor moves to GetQuote's start: not on the path.
    assert steps(f) == [("checkout:PlaceOrder", 30.0), ("checkout:GetQuote", 4.0), ("shipping:GetQuote", 66.0)]
    assert blamed(f) == ("shipping", "GetQuote", 66.0)
    assert f.primary.path == ("checkout:PlaceOrder", "checkout:GetQuote", "shipping:GetQuote")
    assert not f.primary.blamed_callee


def test_overlapping_children_the_last_finishing_wins_and_the_rest_is_self_time() -> None:
    def build() -> Trace:
        return trace(("svc", [span(1, "root", start=0, end=100 * MS),
                              span(2, "early", 1, start=0, end=70 * MS),
                              span(3, "late", 1, start=50 * MS, end=95 * MS)]))

    f = explain(build)
    # "late" is taken (cursor 100 -> 50); "early" ends at 70 > 50: not on the path. The root's own time is
    # 95..100 and 0..50.
    assert steps(f) == [("svc:root", 55.0), ("svc:late", 45.0)]
    assert blamed(f) == ("svc", "root", 55.0) and f.primary.depth == 0 and f.primary.path == ("svc:root",)


def test_children_after_the_cursor_are_taken_in_turn() -> None:
    def build() -> Trace:
        return trace(("svc", [span(1, "root", start=0, end=100 * MS),
                              span(2, "a", 1, start=0, end=30 * MS),
                              span(3, "b", 1, start=20 * MS, end=60 * MS),  # overlaps a: a is then skipped
                              span(4, "c", 1, start=65 * MS, end=90 * MS)]))

    f = explain(build)
    assert steps(f) == [("svc:root", 35.0), ("svc:b", 40.0), ("svc:c", 25.0)]
    assert sum(s.self_time_ms for s in f.critical_path) == pytest.approx(f.duration_ms)


def test_missing_child_leaves_a_gap_that_is_the_parents_self_time() -> None:
    def build() -> Trace:
        # The span between "a" and "c" was never reported (its parent id names the root, its bytes are lost).
        return trace(("svc", [span(1, "root", start=0, end=100 * MS),
                              span(2, "a", 1, start=0, end=20 * MS),
                              span(4, "c", 1, start=70 * MS, end=100 * MS)]))

    f = explain(build)
    assert steps(f) == [("svc:root", 50.0), ("svc:a", 20.0), ("svc:c", 30.0)]
    assert blamed(f) == ("svc", "root", 50.0)


def test_grandchildren_are_part_of_the_path() -> None:
    def build() -> Trace:
        return trace(("svc", [span(1, "root", start=0, end=100 * MS),
                              span(2, "mid", 1, start=10 * MS, end=90 * MS),
                              span(3, "leaf1", 2, start=20 * MS, end=40 * MS),
                              span(4, "leaf2", 2, start=40 * MS, end=85 * MS)]))

    f = explain(build)
    assert steps(f) == [("svc:root", 20.0), ("svc:mid", 15.0), ("svc:leaf1", 20.0), ("svc:leaf2", 45.0)]
    assert blamed(f) == ("svc", "leaf2", 45.0) and f.primary.depth == 2
    assert f.primary.path == ("svc:root", "svc:mid", "svc:leaf2")


# -- clock skew ------------------------------------------------------------------------------------------


def test_child_starting_before_its_parent_is_clipped() -> None:
    def build() -> Trace:
        return trace(("a", [span(1, "root", start=100 * MS, end=200 * MS, kind=SERVER)]),
                     ("b", [span(2, "skewed", 1, start=50 * MS, end=170 * MS, kind=SERVER),
                            span(3, "inner", 2, start=60 * MS, end=120 * MS)]))

    f = explain(build)
    # skewed -> [100, 170]; its child inner -> [100, 120] (clipped to the clipped interval).
    assert steps(f) == [("a:root", 30.0), ("b:skewed", 50.0), ("b:inner", 20.0)]
    assert blamed(f) == ("b", "skewed", 50.0)


def test_child_ending_after_its_parent_is_clipped() -> None:
    def build() -> Trace:
        return trace(("a", [span(1, "root", start=100 * MS, end=200 * MS)]),
                     ("b", [span(2, "skewed", 1, start=130 * MS, end=260 * MS)]))

    f = explain(build)
    assert steps(f) == [("a:root", 30.0), ("b:skewed", 70.0)]
    assert blamed(f) == ("b", "skewed", 70.0)


def test_child_wholly_outside_its_parent_is_ignored() -> None:
    def build() -> Trace:
        return trace(("a", [span(1, "root", start=100 * MS, end=200 * MS)]),
                     ("b", [span(2, "after", 1, start=210 * MS, end=900 * MS),
                            span(3, "before", 1, start=0, end=90 * MS)]))

    f = explain(build)
    assert steps(f) == [("a:root", 100.0)] and f.critical_path_length == 1
    assert blamed(f) == ("a", "root", 100.0)


def test_span_ending_before_it_starts_lasts_zero() -> None:
    def build() -> Trace:
        return trace(("a", [span(1, "root", start=0, end=100 * MS),
                            span(2, "broken", 1, start=50 * MS, end=10 * MS)]))

    f = explain(build)
    assert steps(f) == [("a:root", 100.0), ("a:broken", 0.0)]
    assert explain(build, 2).duration_ms == 0.0


# -- blame: callees and ties -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "service"),
    [
        ({"db.system": "postgresql"}, "postgresql"),
        ({"db.system": "postgresql", "server.address": "db.internal"}, "db.internal"),
        ({"db.system": "postgresql", "server.address": "db.internal", "peer.service": "orders-db"}, "orders-db"),
    ],
)
def test_client_leaf_to_an_uninstrumented_database_blames_the_callee(attrs: dict[str, object], service: str) -> None:
    def build() -> Trace:
        return trace(("inventory", [span(1, "GetStock", start=0, end=100 * MS, kind=SERVER),
                                    span(2, "SELECT stock", 1, start=5 * MS, end=95 * MS, kind=CLIENT, attrs=attrs)]))

    f = explain(build)
    assert blamed(f) == (service, "SELECT stock", 90.0)
    assert f.primary.blamed_callee and f.primary.span_service == "inventory"
    assert f.primary.path == ("inventory:GetStock", "inventory:SELECT stock")  # paths name the span's own service


def test_client_with_a_server_child_blames_its_own_service() -> None:
    def build() -> Trace:
        # The CLIENT span's own time is the network and queueing around a short server span.
        return trace(("web", [span(1, "GET /", start=0, end=100 * MS, kind=SERVER),
                              span(2, "call", 1, start=5 * MS, end=95 * MS, kind=CLIENT,
                                   attrs={"peer.service": "api"})]),
                     ("api", [span(3, "handle", 2, start=40 * MS, end=50 * MS, kind=SERVER)]))

    f = explain(build)
    assert blamed(f) == ("web", "call", 80.0) and not f.primary.blamed_callee


def test_blame_ties_deeper_first_then_earlier_start_then_span_id() -> None:
    def deeper() -> Trace:  # root 50 ms own, child 50 ms: the child (deeper) is blamed
        return trace(("s", [span(1, "root", start=0, end=100 * MS), span(2, "child", 1, start=50 * MS, end=100 * MS)]))

    assert blamed(explain(deeper)) == ("s", "child", 50.0)

    def earlier() -> Trace:  # two siblings of 40 ms each: the earlier one
        return trace(("s", [span(1, "root", start=0, end=100 * MS),
                            span(3, "second", 1, start=55 * MS, end=95 * MS),
                            span(2, "first", 1, start=10 * MS, end=50 * MS)]))

    assert blamed(explain(earlier)) == ("s", "first", 40.0)


def test_children_ending_together_the_later_start_is_taken_then_the_lower_id() -> None:
    def later_start() -> Trace:
        return trace(("s", [span(1, "root", start=0, end=100 * MS),
                            span(2, "long", 1, start=10 * MS, end=90 * MS),
                            span(3, "short", 1, start=60 * MS, end=90 * MS)]))

    f = explain(later_start)
    assert steps(f) == [("s:root", 70.0), ("s:short", 30.0)]  # "long" ends after the cursor (60) then

    def same_interval() -> Trace:
        return trace(("s", [span(1, "root", start=0, end=100 * MS),
                            span(7, "seven", 1, start=10 * MS, end=90 * MS),
                            span(5, "five", 1, start=10 * MS, end=90 * MS)]))

    f = explain(same_interval)
    assert steps(f) == [("s:root", 20.0), ("s:five", 80.0)]


# -- signals and thresholds (find_slow) ------------------------------------------------------------------


def shop(root_status: int = 0) -> Trace:
    return trace(
        ("frontend", [span(1, "POST /checkout", start=0, end=900 * MS, kind=SERVER, status=root_status),
                      span(2, "place_order", 1, start=10 * MS, end=880 * MS),
                      span(3, "GET /cart", start=0, end=30 * MS, kind=SERVER)]),  # a second root, fast
        ("inventory", [span(4, "ReserveItems", 2, start=20 * MS, end=870 * MS, kind=SERVER)]),
    )


def test_default_signal_every_root_span_longer_than_the_threshold() -> None:
    result = find_slow(shop(), (), 500 * MS)
    (f,) = result.failures
    assert (f.signal, f.signal_span_name, f.threshold_ms, f.duration_ms) == ("root", "POST /checkout", 500.0, 900.0)
    assert blamed(f) == ("inventory", "ReserveItems", 850.0)
    assert [s.span_id for s in result.signal_spans] == [sid(1)] and result.stale == [False]
    assert find_slow(shop(), (), 900 * MS).failures == []  # strictly longer than the threshold
    assert find_slow(shop(), (), 0).failures == []  # 0: off


def test_signal_in_error_keeps_the_error_walk() -> None:
    assert find_slow(shop(root_status=ERROR), (), 500 * MS).failures == []
    # latency_cause leaves that choice to its caller
    f = latency_cause(shop(root_status=ERROR), sid(1), 500)
    assert f is not None and f.primary.service == "inventory"


def test_named_signals_first_match_decides_and_zero_is_off() -> None:
    checkout = SignalMatcher("checkout", service="frontend", span_name="place_order")
    frontend = SignalMatcher("frontend", service="frontend")
    first, f = find_slow(shop(), [(checkout, 800 * MS), (frontend, 100 * MS)]).failures
    assert (first.signal, first.signal_span_name, first.threshold_ms) == ("frontend", "POST /checkout", 100.0)
    assert (f.signal, f.signal_span_name, f.threshold_ms) == ("checkout", "place_order", 800.0)
    assert f.primary.path == ("frontend:place_order", "inventory:ReserveItems") and f.primary.depth == 1
    assert find_slow(shop(), [(checkout, 870 * MS), (frontend, 900 * MS)]).failures == []  # neither is longer
    # place_order belongs to "checkout" (first match), whose walk is off: only POST /checkout is left.
    (f,) = find_slow(shop(), [(checkout, 0), (frontend, 100 * MS)]).failures
    assert (f.signal, f.signal_span_name) == ("frontend", "POST /checkout")
    regex = SignalMatcher("any", span_name_regex="^(GET|POST) ")
    assert find_slow(shop(), [(regex, 10 * MS)]).failures[1].signal_span_name == "GET /cart"


def test_max_signals_counts_the_rest_as_skipped() -> None:
    spans = [span(n, f"job{n}", start=0, end=(100 + n) * MS) for n in range(1, 6)]
    result = find_slow(trace(("batch", spans)), (), 50 * MS, max_signals=2)
    assert len(result.failures) == 2 and result.signals_skipped == 3


def test_latency_cause_unknown_span_or_not_slow_is_none() -> None:
    assert latency_cause(shop(), sid(99)) is None
    assert latency_cause(shop(), sid(3), 30.0) is None  # 30 ms, not longer than 30 ms
    f = latency_cause(shop(), sid(3), 29.0)
    assert f is not None and blamed(f) == ("frontend", "GET /cart", 30.0)


# -- malformed traces -------------------------------------------------------------------------------------


def test_cycle_is_walked_once() -> None:
    def build() -> Trace:
        # 1 -> 2 -> 3 -> 1 (each names the next as its child's parent); 4 is a self-parent below 1.
        return trace(("s", [span(1, "a", 3, start=0, end=100 * MS), span(2, "b", 1, start=10 * MS, end=90 * MS),
                            span(3, "c", 2, start=20 * MS, end=80 * MS), span(4, "d", 4, start=0, end=50 * MS)]))

    f = explain(build)
    assert steps(f) == [("s:a", 20.0), ("s:b", 20.0), ("s:c", 60.0)]
    assert find_slow(build(), (), 1).failures == []  # no root span: the default signal has nothing to walk
    f = explain(build, 4)
    assert steps(f) == [("s:d", 50.0)]


def test_orphans_are_root_spans() -> None:
    t = trace(("s", [span(1, "root", start=0, end=10 * MS),
                     span(2, "orphan", 77, start=0, end=200 * MS), span(3, "kid", 2, start=0, end=150 * MS)]))
    (f,) = find_slow(t, (), 100 * MS).failures
    assert f.signal_span_name == "orphan" and blamed(f) == ("s", "kid", 150.0)


def test_duplicate_span_ids_are_one_span() -> None:
    def build() -> Trace:
        root = span(1, "root", start=0, end=100 * MS, kind=SERVER)
        child = span(2, "work", 1, start=10 * MS, end=90 * MS)
        return trace(("s", [root, child]), ("s2", [span(1, "root", start=0, end=100 * MS, kind=SERVER)]),
                     ("s", [Span.FromString(child.SerializeToString())]))

    wire = build()
    index = SpanIndex(wire)
    index.build()
    assert index.chunks is None and len(index) == 2  # duplicates: decoded, one node per id
    f = explain(build, wire=False)
    assert steps(f) == [("s:root", 20.0), ("s:work", 80.0)]


def test_zipkin_shared_id_the_server_copy_stands_for_the_id() -> None:
    def build() -> Trace:
        return trace(("web", [span(1, "root", start=0, end=100 * MS, kind=SERVER),
                              span(2, "call api", 1, start=5 * MS, end=95 * MS, kind=CLIENT,
                                   attrs={"peer.service": "api"})]),
                     ("api", [span(2, "handle", 1, start=10 * MS, end=90 * MS, kind=SERVER)]))

    f = explain(build, wire=False)
    assert blamed(f) == ("api", "handle", 80.0) and not f.primary.blamed_callee


def test_hundred_thousand_deep_chain() -> None:
    n = 100_000
    # Each span starts 10 ns after its parent and ends 10 ns before it; the deepest one lasts about 10 µs.
    top = 2 * n * 10 + 10_000
    spans = [Span(trace_id=TRACE_ID, span_id=sid(i + 1), parent_span_id=sid(i) if i else b"", name=f"op{i}",
                  start_time_unix_nano=i * 10, end_time_unix_nano=top - i * 10)
             for i in range(n)]
    t0 = time.process_time()
    t = trace((resource("deep"), spans))
    for decoded in (False, True):
        if decoded:
            t.groups()
        (f,) = find_slow(t, (), 1, max_path=8).failures
        assert f.primary.span_name == f"op{n - 1}" and f.primary.depth == n - 1
        assert f.primary.self_time_ms == pytest.approx(0.01002)
        assert len(f.primary.path) == 8 and f.primary.path[1] == f"... {n - 7} spans ..."
        assert f.critical_path_length == n and len(f.critical_path) == 8
        assert f.critical_path[-1] == ("deep:op99999", pytest.approx(0.01002))
        assert sum(s.self_time_ms for s in f.critical_path) < f.duration_ms
    assert time.process_time() - t0 < 30
