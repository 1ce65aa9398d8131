"""The root-cause walk: the error predicate, following children in error, primary choice, callee blame,
signals, and malformed traces (orphans, cycles, duplicate ids, 100k-deep and 100k-wide)."""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace
from pipelines.root_cause import SignalMatcher, WalkResult, find_failures, in_error
from tests.pipelines.root_cause import CLIENT, ERROR, OK, SERVER, TRACE_ID, resource, sid, span, trace


def walk(t: Trace, *signals: SignalMatcher, **limits: int) -> WalkResult:
    return find_failures(t, signals, **limits)


def checkout_trace(db_status: int = ERROR) -> Trace:
    """frontend place_order -> checkout PlaceOrder -> payment Charge -> payment INSERT (CLIENT to orders-db)."""
    return trace(
        ("frontend", [span(1, "place_order", status=ERROR, end=900)]),
        ("checkout", [span(2, "PlaceOrder", 1, status=ERROR, kind=SERVER, end=800),
                      span(5, "GetCart", 2, kind=CLIENT, end=100)]),
        ("payment", [span(3, "Charge", 2, status=ERROR, kind=SERVER, end=700),
                     span(4, "INSERT orders", 3, status=db_status, kind=CLIENT, end=600,
                          attrs={"db.system": "postgresql", "peer.service": "orders-db"})]),
    )


# -- the error predicate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "attrs", "expected"),
    [
        (ERROR, {}, True),
        (0, {}, False),
        (OK, {}, False),
        (0, {"error": True}, True),
        (0, {"error": False}, False),
        (0, {"error": "true"}, True),
        (0, {"error": "TRUE"}, True),
        (0, {"error": "yes"}, False),
        (0, {"error": 1}, False),
        (OK, {"error": True}, False),  # status OK always wins
        (OK, {"error": "true"}, False),
    ],
)
def test_in_error(status: int, attrs: dict[str, object], expected: bool) -> None:
    s = span(1, "op", status=status, attrs=attrs)
    assert in_error(s) is expected
    result = walk(trace(("svc", [s])))
    assert bool(result.failures) is expected


def test_error_free_trace_has_no_failures() -> None:
    t = trace(("a", [span(1, "root"), span(2, "child", 1, status=OK)]), ("b", [span(3, "x", 2)]))
    assert walk(t).failures == []


def test_error_words_in_bytes_without_error_are_checked_exactly() -> None:
    # "error" in a name and an int attribute of 2 (bytes 18 02) trip the byte scan, not the walk.
    t = trace(("svc", [span(1, "handle_error", attrs={"retries": 2, "error.kind": "none"})]))
    assert walk(t).failures == []


# -- the walk ---------------------------------------------------------------------------------------


def test_three_deep_failure_blames_the_leaf_with_the_whole_path() -> None:
    t = checkout_trace()
    (failure,) = walk(t).failures
    assert (failure.signal, failure.signal_service, failure.signal_span_name) == ("root", "frontend", "place_order")
    assert failure.signal_span_id == sid(1) and failure.trace_id == TRACE_ID
    cause = failure.primary
    assert failure.root_causes == (cause,) and failure.root_cause_count == 1
    assert cause.span_id == sid(4) and cause.span_name == "INSERT orders" and cause.depth == 3
    assert cause.service == "orders-db" and cause.blamed_callee and cause.span_service == "payment"
    assert cause.path == ("frontend:place_order", "checkout:PlaceOrder", "payment:Charge", "payment:INSERT orders")
    assert cause.end_time_unix_nano == 600


def test_the_walk_stops_where_errors_stop() -> None:
    (failure,) = walk(checkout_trace(db_status=OK)).failures
    assert failure.primary.span_id == sid(3)
    assert (failure.primary.service, failure.primary.blamed_callee) == ("payment", False)
    assert failure.primary.depth == 2


def test_signal_without_children_in_error_is_its_own_root_cause() -> None:
    (failure,) = walk(trace(("web", [span(1, "GET /", status=ERROR), span(2, "ok", 1)]))).failures
    assert failure.primary.span_id == sid(1) and failure.primary.depth == 0
    assert failure.primary.path == ("web:GET /",)


def test_two_independent_failing_leaves_primary_ended_first() -> None:
    t = trace(
        ("frontend", [span(1, "place_order", status=ERROR, end=1000)]),
        ("inventory", [span(2, "Reserve", 1, status=ERROR, end=500)]),
        ("shipping", [span(3, "Quote", 1, status=ERROR, end=400)]),
    )
    (failure,) = walk(t).failures
    assert [c.service for c in failure.root_causes] == ["shipping", "inventory"]
    assert failure.primary.service == "shipping" and failure.root_cause_count == 2


def test_ties_deeper_first_then_span_id() -> None:
    t = trace(("svc", [
        span(1, "root", status=ERROR, end=1000),
        span(9, "shallow", 1, status=ERROR, end=500),
        span(2, "mid", 1, status=ERROR, end=900),
        span(3, "deep", 2, status=ERROR, end=500),
        span(8, "tie-b", 1, status=ERROR, end=300),
        span(7, "tie-a", 1, status=ERROR, end=300),
    ]))
    (failure,) = walk(t).failures
    assert [c.span_name for c in failure.root_causes] == ["tie-a", "tie-b", "deep", "shallow"]
    assert [c.depth for c in failure.root_causes] == [1, 1, 2, 1]


def test_children_not_in_error_are_not_followed() -> None:
    t = trace(("svc", [
        span(1, "root", status=ERROR), span(2, "ok", 1, status=OK), span(3, "below-ok", 2, status=ERROR),
        span(4, "unset", 1), span(5, "bad", 1, attrs={"error": "true"}),
    ]))
    (failure,) = walk(t).failures
    assert [c.span_name for c in failure.root_causes] == ["bad"]


# -- blame of the callee -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "service"),
    [
        ({"db.system": "postgresql"}, "postgresql"),
        ({"db.system": "postgresql", "server.address": "db.internal"}, "db.internal"),
        ({"db.system": "postgresql", "server.address": "db.internal", "peer.service": "orders-db"}, "orders-db"),
        ({"peer.service": "", "server.address": "db.internal"}, "db.internal"),
    ],
)
def test_client_leaf_blames_the_callee(attrs: dict[str, object], service: str) -> None:
    t = trace(("payment", [span(1, "Charge", status=ERROR, kind=SERVER),
                           span(2, "query", 1, status=ERROR, kind=CLIENT, attrs=attrs)]))
    cause = walk(t).failures[0].primary
    assert (cause.service, cause.blamed_callee, cause.span_service) == (service, True, "payment")
    assert cause.path == ("payment:Charge", "payment:query")  # the path names the span's own service


def test_client_without_callee_attributes_is_its_own_service() -> None:
    t = trace(("payment", [span(1, "Charge", status=ERROR), span(2, "call", 1, status=ERROR, kind=CLIENT)]))
    cause = walk(t).failures[0].primary
    assert (cause.service, cause.blamed_callee) == ("payment", False)


def test_client_with_server_child_in_error_continues_into_the_server() -> None:
    t = trace(
        ("checkout", [span(1, "PlaceOrder", status=ERROR, kind=SERVER),
                      span(2, "POST /charge", 1, status=ERROR, kind=CLIENT, attrs={"peer.service": "payment"})]),
        ("payment", [span(3, "POST /charge", 2, status=ERROR, kind=SERVER),
                     span(4, "validate", 3, status=ERROR, end=10)]),
    )
    cause = walk(t).failures[0].primary
    assert (cause.service, cause.span_name, cause.depth, cause.blamed_callee) == ("payment", "validate", 3, False)


def test_client_with_server_child_not_in_error_blames_itself() -> None:
    t = trace(
        ("checkout", [span(1, "PlaceOrder", status=ERROR, kind=SERVER),
                      span(2, "POST /charge", 1, status=ERROR, kind=CLIENT, attrs={"peer.service": "payment"})]),
        ("payment", [span(3, "POST /charge", 2, kind=SERVER)]),
    )
    cause = walk(t).failures[0].primary
    assert (cause.service, cause.blamed_callee) == ("checkout", False)


# -- error details and resource ----------------------------------------------------------------------


def test_error_details_from_exception_event() -> None:
    t = trace((resource("payment", service_owner="group:payments", host_cpu=4), [span(
        1, "Charge", status=ERROR, message="status says",
        attrs={"exception.type": "AttrError"},
        events=[("exception", {"exception.type": "TimeoutError", "exception.message": "db timed out"})],
    )]))
    cause = walk(t).failures[0].primary
    assert (cause.error_type, cause.error_message) == ("TimeoutError", "db timed out")
    assert dict(cause.resource_attributes) == {"service.name": "payment", "service.owner": "group:payments"}


def test_error_details_from_attributes_then_status_message() -> None:
    t = trace(("svc", [span(1, "a", status=ERROR, message="deadline exceeded", attrs={"error.type": "TIMEOUT"})]))
    cause = walk(t).failures[0].primary
    assert (cause.error_type, cause.error_message) == ("TIMEOUT", "deadline exceeded")
    t = trace(("svc", [span(1, "a", status=ERROR, attrs={"exception.message": "boom"})]))
    assert (walk(t).failures[0].primary.error_type, walk(t).failures[0].primary.error_message) == ("", "boom")


# -- signals ----------------------------------------------------------------------------------------


def shop_with_nested_signal() -> Trace:
    return trace(
        ("frontend", [span(1, "HTTP GET", status=ERROR), span(2, "place_order", 1, status=ERROR)]),
        ("checkout", [span(3, "PlaceOrder", 2, status=ERROR), span(4, "charge_card", 3, status=ERROR, end=50)]),
    )


def test_signal_by_service_and_span_name() -> None:
    result = walk(shop_with_nested_signal(), SignalMatcher("checkout", service="frontend", span_name="place_order"))
    (failure,) = result.failures
    assert (failure.signal, failure.signal_span_id) == ("checkout", sid(2))
    assert failure.primary.path == ("frontend:place_order", "checkout:PlaceOrder", "checkout:charge_card")
    assert failure.primary.depth == 2 and result.signal_spans[0].span_id == sid(2)


def test_signal_by_regex_and_nested_signals() -> None:
    result = walk(shop_with_nested_signal(), SignalMatcher("orders", span_name_regex=r"(?i)^placeorder$"),
                  SignalMatcher("http", span_name_regex="^HTTP "))
    assert [(f.signal, f.signal_span_name, f.primary.depth) for f in result.failures] == [
        ("http", "HTTP GET", 3), ("orders", "PlaceOrder", 1)]
    assert all(f.primary.span_id == sid(4) for f in result.failures)


def test_signal_matching_nothing_in_error() -> None:
    assert walk(shop_with_nested_signal(), SignalMatcher("x", service="email")).failures == []
    t = trace(("frontend", [span(1, "place_order"), span(2, "child", 1, status=ERROR)]))
    assert walk(t, SignalMatcher("checkout", span_name="place_order")).failures == []


def test_first_matching_signal_wins() -> None:
    result = walk(shop_with_nested_signal(), SignalMatcher("a", service="frontend"),
                  SignalMatcher("b", span_name="place_order"))
    assert [(f.signal, f.signal_span_name) for f in result.failures] == [("a", "HTTP GET"), ("a", "place_order")]


def test_default_signals_are_root_spans_and_orphans() -> None:
    t = trace(
        ("a", [span(1, "root", status=ERROR, end=10), span(2, "child", 1, status=ERROR, end=5)]),
        ("b", [span(3, "orphan", 99, status=ERROR), span(4, "below-orphan", 3, status=ERROR, end=7)]),
        ("c", [span(5, "ok-root"), span(6, "failing-under-ok-root", 5, status=ERROR)]),
    )
    result = walk(t)
    assert [(f.signal, f.signal_span_name, f.primary.span_name) for f in result.failures] == [
        ("root", "root", "child"), ("root", "orphan", "below-orphan")]


def test_max_signals_per_trace() -> None:
    t = trace(("svc", [span(i, f"s{i}", status=ERROR) for i in range(1, 11)]))
    result = walk(t, max_signals=3)
    assert len(result.failures) == 3 and result.signals_skipped == 7


# -- malformed traces ---------------------------------------------------------------------------------


def test_cycle_does_not_hang() -> None:
    # A root span 1, and spans 2 and 3 each the parent of the other.
    t = trace(("svc", [span(1, "root", status=ERROR), span(2, "a", 3, status=ERROR), span(3, "b", 2, status=ERROR)]))
    # 1 has no child; 2 and 3 form a cycle with no way in, so no default signal reaches them.
    assert [c.span_name for c in walk(t).failures[0].root_causes] == ["root"]
    result = walk(t, SignalMatcher("a", span_name="a"), SignalMatcher("b", span_name="b"))
    # a is walked from itself: a -> b, b's only child (a) was walked: b is the root cause.
    assert [(f.signal, f.primary.span_name, f.primary.depth) for f in result.failures] == [("a", "b", 1), ("b", "b", 0)]


def test_self_parent_and_pure_cycle_have_no_default_signal() -> None:
    t = trace(("svc", [span(1, "self", 1, status=ERROR)]))
    assert walk(t).failures == []
    (failure,) = walk(t, SignalMatcher("s", span_name="self")).failures
    assert failure.primary.span_name == "self" and failure.primary.depth == 0


def test_duplicate_span_ids_are_one_span() -> None:
    def spans() -> list[Span]:
        return [span(1, "root", status=ERROR, end=10), span(2, "leaf", 1, status=ERROR, end=5)]

    t = trace(("svc", spans()), ("svc", spans()))
    (failure,) = walk(t).failures  # at-least-once delivery: the same spans twice
    assert failure.root_cause_count == 1 and failure.primary.span_name == "leaf"
    # A copy in error stands for the id even when a copy not in error came first.
    t = trace(("svc", [span(1, "root", status=ERROR), span(2, "copy-ok", 1), span(2, "copy-bad", 1, status=ERROR)]))
    assert walk(t).failures[0].primary.span_name == "copy-bad"


def test_duplicate_ids_prefer_the_server_copy_in_error() -> None:
    # Zipkin-style shared span: the client side (first) and the server side carry one id.
    t = trace(
        ("web", [span(1, "root", status=ERROR), span(2, "POST /login", 1, status=ERROR, kind=CLIENT,
                                                      attrs={"peer.service": "auth"})]),
        ("auth", [span(2, "POST /login", 1, status=ERROR, kind=SERVER, end=50)]),
    )
    cause = walk(t).failures[0].primary
    assert (cause.service, cause.span_service, cause.blamed_callee) == ("auth", "auth", False)
    # Only the client copy in error: it is the root cause, and the server copy (same id) is its server side.
    t = trace(
        ("web", [span(1, "root", status=ERROR), span(2, "POST /login", 1, status=ERROR, kind=CLIENT,
                                                      attrs={"peer.service": "auth"})]),
        ("auth", [span(2, "POST /login", 1, kind=SERVER)]),
    )
    cause = walk(t).failures[0].primary
    assert (cause.service, cause.span_service, cause.blamed_callee) == ("web", "web", False)


def test_spans_without_id_are_separate_and_parent_nothing() -> None:
    s1 = span(1, "root", status=ERROR)
    a, b = span(2, "a", 1, status=ERROR, end=5), span(3, "b", 1, status=ERROR, end=6)
    a.span_id = b.span_id = b""
    (failure,) = walk(trace(("svc", [s1, a, b]))).failures
    assert [c.span_name for c in failure.root_causes] == ["a", "b"]


def test_deep_chain_100k() -> None:
    n = 100_000
    spans = [span(1, "s1", status=ERROR, end=2 * n)]
    spans += [span(i, f"s{i}", i - 1, status=ERROR, end=2 * n - i) for i in range(2, n + 1)]
    t = trace(("svc", spans))
    t.groups()
    started = time.process_time()
    (failure,) = walk(t, max_path=10).failures
    elapsed = time.process_time() - started
    assert elapsed < 3.0, f"100k-deep walk took {elapsed:.2f}s"
    cause = failure.primary
    assert cause.span_name == f"s{n}" and cause.depth == n - 1
    assert cause.path[:2] == ("svc:s1", f"... {n - 9} spans ...")
    assert cause.path[2:] == tuple(f"svc:s{i}" for i in range(n - 7, n + 1))
    assert len(cause.path) == 10


def test_wide_fan_out_100k() -> None:
    n = 100_000
    spans = [span(1, "root", status=ERROR, end=10 * n)]
    spans += [span(i, f"c{i}", 1, status=ERROR, end=10 * n - i) for i in range(2, n + 2)]
    t = trace(("svc", spans))
    t.groups()
    started = time.process_time()
    (failure,) = walk(t, max_root_causes=5).failures
    elapsed = time.process_time() - started
    assert elapsed < 3.0, f"100k-wide walk took {elapsed:.2f}s"
    assert failure.root_cause_count == n and len(failure.root_causes) == 5
    assert [c.span_name for c in failure.root_causes] == [f"c{i}" for i in range(n + 1, n - 4, -1)]


def test_deep_cycle_100k() -> None:
    n = 100_000
    spans = [span(i, f"s{i}", i - 1 if i > 1 else n, status=ERROR) for i in range(1, n + 1)]
    t = trace(("svc", spans))
    started = time.process_time()  # CPU time: a loaded machine does not make a linear walk look quadratic
    assert walk(t).failures == []
    (failure,) = walk(t, SignalMatcher("s", span_name="s1")).failures
    assert time.process_time() - started < 20.0  # linear: about 1 s here; a quadratic walk takes minutes
    assert failure.primary.span_name == f"s{n}" and failure.primary.depth == n - 1
