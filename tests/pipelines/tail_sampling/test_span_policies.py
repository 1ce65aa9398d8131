"""latency, status_code, trace_state, trace_flags, span_count, always_sample: contrib's test cases."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from pipelines.tail_sampling.policies import Decision
from pipelines.tail_sampling.policies.always_sample import AlwaysSample
from pipelines.tail_sampling.policies.latency import Latency, LatencyConfig
from pipelines.tail_sampling.policies.span_count import SpanCount, SpanCountConfig
from pipelines.tail_sampling.policies.status_code import StatusCode, StatusCodeConfig
from pipelines.tail_sampling.policies.trace_flags import TraceFlags
from pipelines.tail_sampling.policies.trace_state import TraceState, TraceStateConfig, trace_state_get
from tests.pipelines.tail_sampling.support import cfg, span, trace

S, N = Decision.SAMPLED, Decision.NOT_SAMPLED
OK, ERROR, UNSET = Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR, Status.STATUS_CODE_UNSET

LATENCY_CASES: list[tuple[str, dict[str, int], list[tuple[float, float]], Decision]] = [
    # (case, config, spans as (start ms, end ms), decision)
    ("shorter than threshold", {"threshold_ms": 5000}, [(0, 4000)], N),
    ("equal to threshold", {"threshold_ms": 5000}, [(0, 5000)], S),
    ("longer than threshold", {"threshold_ms": 5000}, [(0, 5001)], S),
    ("1 ns short of threshold", {"threshold_ms": 5000}, [(0, 4999.999999)], N),
    ("spans together reach threshold", {"threshold_ms": 5000}, [(0, 3000), (2000, 5000)], S),
    ("gap counts (earliest start to latest end)", {"threshold_ms": 5000}, [(0, 1), (5999, 6000)], S),
    ("upper: shorter than lower bound", {"threshold_ms": 5000, "upper_threshold_ms": 10000}, [(0, 4000)], N),
    ("upper: equal to lower bound (exclusive)", {"threshold_ms": 5000, "upper_threshold_ms": 10000}, [(0, 5000)], N),
    ("upper: between bounds", {"threshold_ms": 5000, "upper_threshold_ms": 10000}, [(0, 7000)], S),
    ("upper: equal to upper bound (inclusive)", {"threshold_ms": 5000, "upper_threshold_ms": 10000},
     [(0, 10000)], S),
    ("upper: longer than upper bound", {"threshold_ms": 5000, "upper_threshold_ms": 10000}, [(0, 10001)], N),
    ("upper: in range before a later span widens it (contrib's running check)",
     {"threshold_ms": 5000, "upper_threshold_ms": 10000}, [(0, 7000), (0, 20000)], S),
    ("threshold 0 samples any trace", {"threshold_ms": 0}, [(0, 0)], S),
]


@pytest.mark.parametrize(("config", "spans", "expected"), [c[1:] for c in LATENCY_CASES],
                         ids=[c[0] for c in LATENCY_CASES])
def test_latency(config: dict[str, int], spans: list[tuple[float, float]], expected: Decision) -> None:
    policy = Latency("p", cfg(LatencyConfig, **config))
    assert policy.evaluate(trace(*(span(s, e) for s, e in spans)), 0.0) is expected


def test_latency_empty_trace() -> None:
    assert Latency("p", cfg(LatencyConfig, threshold_ms=0)).evaluate(trace(), 0.0) is N


STATUS_CASES: list[tuple[str, list[str], list[int], Decision]] = [
    ("error wanted, error present", ["ERROR"], [OK, ERROR], S),
    ("error wanted, none", ["ERROR"], [OK, UNSET], N),
    ("ok wanted", ["OK"], [OK], S),
    ("unset wanted", ["UNSET"], [UNSET], S),
    ("several wanted", ["ERROR", "UNSET"], [OK, UNSET], S),
    ("several wanted, none present", ["ERROR", "UNSET"], [OK, OK], N),
]


@pytest.mark.parametrize(("codes", "statuses", "expected"), [c[1:] for c in STATUS_CASES],
                         ids=[c[0] for c in STATUS_CASES])
def test_status_code(codes: list[str], statuses: list[int], expected: Decision) -> None:
    policy = StatusCode("p", cfg(StatusCodeConfig, status_codes=codes))
    assert policy.evaluate(trace(*(span(status=s) for s in statuses)), 0.0) is expected
    assert policy.evaluate(trace(), 0.0) is N


@pytest.mark.parametrize("known", [True, False])
def test_status_code_error_uses_what_a_stage_before_found(known: bool) -> None:
    # root_cause records Trace.error_status exactly; status_code then reads no span. Here the recorded
    # value contradicts the spans, so only a policy that uses it decides as asserted; Trace.add forgets it
    # and the spans are read again.
    policy = StatusCode("p", cfg(StatusCodeConfig, status_codes=["ERROR"]))
    t = trace(span(status=OK if known else ERROR), span(status=OK, attributes={"error": True}))
    t.error_status = known
    assert policy.evaluate(t, 0.0) is (S if known else N)
    assert not t.decoded
    origin = next(iter(t.chunks))
    t.add(origin, ScopeSpans(spans=[span(status=OK)]).SerializeToString(), 1, 0, 1)
    assert t.error_status is None
    assert policy.evaluate(t, 0.0) is (N if known else S)


TRACE_STATE_CASES: list[tuple[str, dict[str, Any], str, Decision]] = [
    ("no trace state", {"key": "foo", "values": ["bar"]}, "", N),
    ("key and value match", {"key": "foo", "values": ["bar"]}, "foo=bar", S),
    ("value differs", {"key": "foo", "values": ["bar"]}, "foo=bar2", N),
    ("key missing", {"key": "foo", "values": ["bar"]}, "baz=bar", N),
    ("among several members", {"key": "foo", "values": ["bar"]}, "a=1, foo=bar ,b=2", S),
    ("one of several values", {"key": "foo", "values": ["x", "bar"]}, "foo=bar", S),
    ("unparsable trace state", {"key": "foo", "values": ["bar"]}, "foo=bar,Invalid Key=1", N),
    ("duplicate key does not parse", {"key": "foo", "values": ["bar"]}, "foo=bar,foo=bar", N),
    ("value too long for key is ignored", {"key": "foo", "values": ["x" * 253]}, "foo=" + "x" * 253, N),
    ("longest value that fits", {"key": "foo", "values": ["x" * 252]}, "foo=" + "x" * 252, S),
    ("empty values match nothing", {"key": "foo", "values": []}, "foo=bar", N),
]


@pytest.mark.parametrize(("config", "state", "expected"), [c[1:] for c in TRACE_STATE_CASES],
                         ids=[c[0] for c in TRACE_STATE_CASES])
def test_trace_state(config: dict[str, Any], state: str, expected: Decision) -> None:
    policy = TraceState("p", cfg(TraceStateConfig, **config))
    assert policy.evaluate(trace(span(trace_state=state)), 0.0) is expected


def test_trace_state_parse() -> None:
    assert trace_state_get("", "a") == ""
    assert trace_state_get("a=1,b=2", "b") == "2"
    assert trace_state_get("a", "a") is None
    assert trace_state_get(",".join(f"k{i}=v" for i in range(33)), "k0") is None
    assert trace_state_get("tenant@vendor=x", "tenant@vendor") == "x"


@pytest.mark.parametrize(("flags", "expected"), [([0], N), ([1], S), ([0, 0x101], S), ([0x100, 2], N), ([], N)])
def test_trace_flags(flags: list[int], expected: Decision) -> None:
    assert TraceFlags("p").evaluate(trace(*(span(flags=f) for f in flags)), 0.0) is expected


SPAN_COUNT_CASES: list[tuple[str, dict[str, int], int, Decision]] = [
    ("fewer than min", {"min_spans": 3}, 2, N),
    ("equal to min", {"min_spans": 3}, 3, S),
    ("more than min, no max", {"min_spans": 3}, 100, S),
    ("within range", {"min_spans": 2, "max_spans": 20}, 10, S),
    ("equal to max", {"min_spans": 2, "max_spans": 20}, 20, S),
    ("above max", {"min_spans": 2, "max_spans": 20}, 21, N),
    ("empty trace, min 0", {"min_spans": 0}, 0, S),
    ("empty trace, min 1", {"min_spans": 1}, 0, N),
]


@pytest.mark.parametrize(("config", "count", "expected"), [c[1:] for c in SPAN_COUNT_CASES],
                         ids=[c[0] for c in SPAN_COUNT_CASES])
def test_span_count(config: dict[str, int], count: int, expected: Decision) -> None:
    policy = SpanCount("p", cfg(SpanCountConfig, **config))
    spans: list[Span] = [span(span_id=i.to_bytes(8, "big")) for i in range(1, count + 1)]
    assert policy.evaluate(trace(*spans), 0.0) is expected


def test_always_sample() -> None:
    assert AlwaysSample("p").evaluate(trace(span()), 0.0) is S
    assert AlwaysSample("p").evaluate(trace(), 0.0) is S


def test_batch_votes_equal_one_by_one() -> None:
    # evaluate_all (what the processor calls for top-level policies) gives evaluate's vote for each trace.
    traces = [trace(*(span(s, e) for s, e in c[2])) for c in LATENCY_CASES]
    traces += [trace(*(span(status=s) for s in c[2])) for c in STATUS_CASES]
    traces += [trace(), trace(span(0, 7000), span(0, 20000)), trace(span(0, 600, status=ERROR))]
    zero = trace(span())
    zero.start = 0  # a span without a start time: the running minimum walk
    traces.append(zero)
    policies: list[Any] = [Latency("p", cfg(LatencyConfig, **c[1])) for c in LATENCY_CASES]
    policies += [StatusCode("p", cfg(StatusCodeConfig, status_codes=c[1])) for c in STATUS_CASES]
    for policy in policies:
        assert policy.evaluate_all(traces, 0.0) == [policy.evaluate(t, 0.0) for t in traces]
