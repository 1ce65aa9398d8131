"""The error walk and the latency walk on arbitrary parent graphs (hypothesis): cycles of any length, self
parents, missing parents, duplicate and empty span ids, times in any order. Every walk ends and returns; the
wire index and the decoded index give the same answer; what is blamed is a span of the trace, in error for
the error walk; the self times along a critical path add up to the signal's duration."""

from __future__ import annotations

import math
from collections.abc import Callable

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace
from pipelines.root_cause import SignalMatcher, find_failures, find_slow, in_error, latency_cause
from pipelines.root_cause.model import Failure
from tests.pipelines.root_cause import CLIENT, ERROR, INTERNAL, OK, SERVER, TRACE_ID, trace

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SERVICES = ("frontend", "checkout", "payment")
MAX_PATH = 5

# One span: (id, parent, status, kind, start, end, error attribute, peer.service, service). Ids come from a
# small pool so that duplicates, cycles and self parents are common; 0 is the empty id; a parent of 99 is
# missing from every trace.
span_specs = st.tuples(
    st.integers(0, 12), st.none() | st.integers(0, 12) | st.just(99), st.sampled_from([0, OK, ERROR, ERROR]),
    st.sampled_from([INTERNAL, CLIENT, SERVER]), st.integers(0, 60), st.integers(0, 60),
    st.sampled_from([None, True, False, "true", "TRUE", "no"]), st.sampled_from([None, "", "orders-db"]),
    st.sampled_from(SERVICES),
)
traces = st.lists(span_specs, min_size=1, max_size=25)
Spec = tuple[int, int | None, int, int, int, int, object, str | None, str]


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big") if n else b""


def build(specs: list[Spec]) -> Callable[[], Trace]:
    def make() -> Trace:
        groups: dict[str, list[Span]] = {}
        for n, parent, status, kind, start, end, error, peer, service in specs:
            s = Span(trace_id=TRACE_ID, span_id=span_id(n), name=f"op{n}", kind=kind,  # type: ignore[arg-type]
                     start_time_unix_nano=start * 1_000_000, end_time_unix_nano=end * 1_000_000)
            if parent is not None:
                s.parent_span_id = span_id(parent)
            if status:
                s.status.code = status  # type: ignore[assignment]
            if error is not None:
                kv = s.attributes.add(key="error")
                if isinstance(error, bool):
                    kv.value.bool_value = error
                else:
                    kv.value.string_value = str(error)
            if peer is not None:
                s.attributes.add(key="peer.service").value.string_value = peer
            groups.setdefault(service, []).append(s)
        return trace(*groups.items())

    return make


def decoded(make: Callable[[], Trace]) -> Trace:
    t = make()
    t.groups()  # decoded: the walks index the decoded spans
    return t


def spans_by_id(specs: list[Spec], make: Callable[[], Trace]) -> dict[bytes, list[Span]]:
    out: dict[bytes, list[Span]] = {}
    for group in make().groups():
        for s in group.scope_spans.spans:
            out.setdefault(s.span_id, []).append(s)
    return out


def check_failure(f: Failure, by_id: dict[bytes, list[Span]], error: bool) -> None:
    assert f.root_causes and f.primary == f.root_causes[0]
    assert f.root_cause_count >= len(f.root_causes)
    assert f.signal_span_id in by_id and f.trace_id == TRACE_ID
    for cause in f.root_causes:
        assert cause.span_id in by_id, "the root cause is a span of the trace"
        assert cause.depth >= 0
        assert 1 <= len(cause.path) <= MAX_PATH
        if error:
            assert any(in_error(s) for s in by_id[cause.span_id]), "the error walk blames a span in error"


@FAST
@given(traces, st.booleans())
def test_error_walk_ends_and_both_indexes_agree(specs: list[Spec], with_signal: bool) -> None:
    make = build(specs)
    signals = (SignalMatcher("checkout", service="checkout"),) if with_signal else ()
    from_wire = find_failures(make(), signals, max_root_causes=3, max_path=MAX_PATH)
    from_decoded = find_failures(decoded(make), signals, max_root_causes=3, max_path=MAX_PATH, from_wire=False)
    assert from_wire.failures == from_decoded.failures
    assert from_wire.signals_skipped == from_decoded.signals_skipped
    by_id = spans_by_id(specs, make)
    event(f"failures: {min(len(from_wire.failures), 2)}")
    for f in from_wire.failures:
        check_failure(f, by_id, error=True)
    if not any(in_error(s) for spans in by_id.values() for s in spans):
        assert from_wire.failures == []


@FAST
@given(traces, st.integers(0, 30))
def test_latency_walk_ends_and_both_indexes_agree(specs: list[Spec], threshold_ms: int) -> None:
    make = build(specs)
    by_id = spans_by_id(specs, make)
    slow = find_slow(make(), (), threshold_ms * 1_000_000, max_path=MAX_PATH)
    assert slow.failures == find_slow(decoded(make), (), threshold_ms * 1_000_000, max_path=MAX_PATH).failures
    event(f"slow signals: {min(len(slow.failures), 2)}")
    for f in slow.failures:
        check_failure(f, by_id, error=False)
        assert f.duration_ms > threshold_ms
    for sid in by_id:
        f = latency_cause(make(), sid, max_path_length=MAX_PATH)
        assert f == latency_cause(decoded(make), sid, max_path_length=MAX_PATH)
        if not sid:
            continue  # an empty id is no one's: it may or may not be found
        assert f is not None, "every span of the trace can be explained"
        check_failure(f, by_id, error=False)
        assert len(f.critical_path) <= MAX_PATH <= f.critical_path_length or (
            len(f.critical_path) == f.critical_path_length)
        if f.critical_path_length == len(f.critical_path):  # the whole path: its self times add up
            assert math.isclose(sum(s.self_time_ms for s in f.critical_path), max(f.duration_ms, 0.0),
                                abs_tol=1e-6)
