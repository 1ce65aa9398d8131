"""What kept spans carry: contrib's ``recordpolicy`` attributes (single policies, ``and``, ``composite``,
cached decisions), the ``th`` of the probability they were kept with, the adjusted-count attribute, and the
feature gates that switch these on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from collector import ComponentID, Host, Kind, Settings, SpanBatch, Telemetry
from collector.config import decode
from collector.config.features import FeatureGates
from collector.config.service import build_config
from collector.consumer import Capabilities
from collector.model import Trace, make_origin, make_trace
from collector.registry import Registry
from collector.trace_buffer import TraceBuffer
from pipelines.tail_sampling import TailSamplingProcessor
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.sample_rate import decode_threshold, ot_fields, threshold_to_probability
from tests.pipelines.tail_sampling.support import span, trace

ERROR = Status.STATUS_CODE_ERROR


def make(raw: dict[str, Any], clock: Callable[[], float] = lambda: 0.0) -> TailSamplingProcessor:
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, Telemetry(), logging.getLogger("t"))
    return TailSamplingProcessor(settings, decode(Config, raw), None, clock=clock)


def pol(name: str, type_: str, **block: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **({type_: block} if block else {})}


def scope_attrs(t: Trace) -> list[dict[str, Any]]:
    """The scope attributes of each span group of a trace, as plain values."""
    out = []
    for g in t.groups():
        scope = ScopeSpans.FromString(g.origin.scope_fields).scope
        out.append({kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in scope.attributes})
    return out


def probability(s: Span) -> float:
    th = ot_fields(s.trace_state).get("th")
    assert th is not None, f"span without th: {s.trace_state!r}"
    return threshold_to_probability(decode_threshold(th))


ERRORS = pol("errors", "status_code", status_codes=["ERROR"])


@pytest.mark.parametrize(("case", "policies", "expected"), [
    # contrib's processor tests with the recordpolicy gate on: the first sampling policy's own name
    ("single policy", [pol("always", "always_sample")], {"tailsampling.policy": "always"}),
    ("first of several", [ERRORS, pol("always", "always_sample")], {"tailsampling.policy": "errors"}),
    ("and", [pol("both", "and", and_sub_policy=[ERRORS, pol("all", "always_sample")])],
     {"tailsampling.policy": "both"}),
    ("composite", [pol("comp", "composite", max_total_spans_per_second=1000, policy_order=["sub-a", "sub-b"],
                       composite_sub_policy=[pol("sub-a", "latency", threshold_ms=10_000),
                                             pol("sub-b", "always_sample")],
                       rate_allocation=[{"policy": "sub-a", "percent": 50}, {"policy": "sub-b", "percent": 50}])],
     {"tailsampling.policy": "comp", "tailsampling.composite_policy": "sub-b"}),
])
def test_record_policy_names_the_deciding_policy_on_the_scope(case: str, policies: list[dict[str, Any]],
                                                            expected: dict[str, Any]) -> None:
    t = trace(span(status=ERROR))
    assert make({"policies": policies, "record_policy": True}).process_traces([t]) == [t]
    assert scope_attrs(t) == [expected]
    plain = trace(span(status=ERROR))
    make({"policies": policies}).process_traces([plain])
    assert scope_attrs(plain) == [{}]  # off by default


def test_record_policy_keeps_the_scope_s_own_attributes_and_other_groups() -> None:
    scope = InstrumentationScope(name="lib", version="1", attributes=[
        KeyValue(key="own", value=AnyValue(string_value="x"))])
    a = make_origin(Resource(), scope)
    b = make_origin(Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="b"))]))
    t = make_trace([(a, [span(span_id=b"\1" * 8)]), (b, [span(span_id=b"\2" * 8, parent=b"\1" * 8)])])
    make({"policies": [pol("always", "always_sample")], "record_policy": True}).process_traces([t])
    assert scope_attrs(t) == [{"own": "x", "tailsampling.policy": "always"}, {"tailsampling.policy": "always"}]
    assert t.span_count == 2 and [len(g.spans) for g in t.groups()] == [1, 1]


def test_dropped_traces_carry_nothing_and_drops_are_counted_per_policy() -> None:
    proc = make({"policies": [ERRORS], "record_policy": True})
    assert proc.process_traces([trace(span())]) == []
    sample = proc._metrics.traces_sampled.labels("errors", "false", "not_sampled")
    assert sample._value.get() == 1


def ema(**extra: Any) -> dict[str, Any]:
    return pol("budget", "ema_throughput", goal_throughput_per_sec=10, field_list=["service.name"],
               initial_sample_rate=4, **extra)


def test_kept_spans_carry_th_of_their_probability_combined_with_the_head_s() -> None:
    # Before its first adjustment ema_throughput keeps 1 in initial_sample_rate (the first trace of a key in
    # an interval: always). Head sampling kept half of the traces (th:8) and wrote rv or nothing else.
    proc = make({"policies": [ema()], "adjusted_count": {"enabled": True}})
    traces = [trace(span(trace_id=i.to_bytes(16, "big"), trace_state="rojo=1,ot=th:8"), resource={"service.name": "a"})
              for i in range(1, 200)]
    kept = proc.process_traces(traces)
    assert 20 < len(kept) < 90
    first, rest = kept[0], kept[1:]
    assert first is traces[0]
    s0 = next(s for _, s in first.iter_spans())
    assert probability(s0) == 0.5  # kept for certain by the tail: the head's probability
    for t in rest:
        for _, s in t.iter_spans():
            assert probability(s) == pytest.approx(0.125, rel=1e-3)  # 0.5 x 1/4
            assert s.trace_state.startswith("ot=th:e") and s.trace_state.endswith(",rojo=1")
            adjusted = next(kv.value.double_value for kv in s.attributes if kv.key == "sampling.adjusted_count")
            assert adjusted == pytest.approx(8.0, rel=1e-3)


def test_certain_keeps_leave_tracestate_alone_unless_use_tracestate() -> None:
    t = trace(span(status=ERROR, trace_state="congo=t61"))
    make({"policies": [ERRORS]}).process_traces([t])
    assert next(s for _, s in t.iter_spans()).trace_state == "congo=t61"
    t = trace(span(status=ERROR, trace_state="congo=t61"))
    make({"policies": [ERRORS], "use_tracestate": True}).process_traces([t])
    assert next(s for _, s in t.iter_spans()).trace_state == "ot=th:0,congo=t61"


def test_probabilistic_with_use_tracestate_decides_by_the_randomness_and_writes_th() -> None:
    policies = [pol("some", "probabilistic", sampling_percentage=25)]
    proc = make({"policies": policies, "use_tracestate": True})
    n = 400
    traces = [trace(span(trace_id=i.to_bytes(16, "big") + b"", trace_state=f"ot=rv:{i * 0x2c0000000000:014x}"))
              for i in range(1, n + 1)]
    kept = proc.process_traces(traces)
    # rv spread evenly over [0, 2**56): those at or above the 75 % rejection threshold are kept
    expected = [t for i, t in enumerate(traces, 1) if i * 0x2c0000000000 >= 0xc0000000000000]
    assert kept == expected
    for t in kept:
        s = next(s for _, s in t.iter_spans())
        assert ot_fields(s.trace_state)["th"] == "c"
        assert ot_fields(s.trace_state)["rv"]  # kept
    # without an ot entry: contrib's hash, and th of the percentage all the same
    plain = [trace(span(trace_id=i.to_bytes(16, "big"))) for i in range(1, 200)]
    for t in make({"policies": policies, "use_tracestate": True}).process_traces(plain):
        assert next(s for _, s in t.iter_spans()).trace_state == "ot=th:c"


def test_feature_gates_switch_on_record_policy_and_use_tracestate() -> None:
    raw = {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
           "processors": {"tail_sampling": {"policies": [ERRORS]}},
           "exporters": {"debug": {}},
           "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["tail_sampling"],
                                                "exporters": ["debug"]}}}}
    registry = Registry.default(plugins=False)
    off = build_config(raw, registry).processors[ComponentID("tail_sampling")].config
    assert not off.record_policy and not off.use_tracestate
    gates = FeatureGates.parse(["processor.tailsamplingprocessor.recordpolicy,"
                                "processor.tailsamplingprocessor.usetracestate"])
    on = build_config(raw, registry, gates=gates).processors[ComponentID("tail_sampling")].config
    assert on.record_policy and on.use_tracestate
    with pytest.raises(ValueError, match="no such feature gate"):
        FeatureGates.parse(["processor.tailsamplingprocessor.nosuchgate"])


# -- cached decisions: late spans released by the trace buffer's decision cache ------------------------------


class Sink:
    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []

    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def consume_traces(self, b: SpanBatch) -> None:
        self.batches.append(b)
        b.release()

    def requests(self) -> list[ExportTraceServiceRequest]:
        return [ExportTraceServiceRequest.FromString(b.to_bytes()) for b in self.batches]


def request(*spans: Span) -> SpanBatch:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="a")))
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    ss.spans.extend(spans)
    return SpanBatch.from_bytes(req.SerializeToString())


async def wait_until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def test_late_spans_released_from_the_cache_carry_cached_decision_and_the_policy() -> None:
    raw = {"policies": [ERRORS], "record_policy": True, "decision_wait": "50ms",
           "decision_cache": {"sampled_cache_size": 10, "non_sampled_cache_size": 10}}
    proc = make(raw)
    sink = Sink()
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, Telemetry(), logging.getLogger("t"))
    buf = TraceBuffer(settings, proc.buffer_settings, [("tail_sampling", proc)], sink)
    await buf.start(Host())
    try:
        tid = (7).to_bytes(16, "big")
        await buf.consume_traces(request(span(trace_id=tid, status=ERROR)))
        await wait_until(lambda: sink.batches)
        await buf.consume_traces(request(span(trace_id=tid, span_id=b"\2" * 8, parent=b"\1" * 8)))
        await wait_until(lambda: len(sink.batches) == 2)
    finally:
        await buf.shutdown()
    first, late = sink.requests()
    attrs = [{kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in r.resource_spans[0].scope_spans[0]
              .scope.attributes} for r in (first, late)]
    assert attrs == [{"tailsampling.policy": "errors"},
                     {"tailsampling.policy": "errors", "tailsampling.cached_decision": True}]
    assert late.resource_spans[0].scope_spans[0].scope.name == "lib"
    entry = proc.lookup(tid)
    assert entry is not None and entry["late_spans"] == {"kept": 1, "dropped": 0}
