"""Measurement on real traces: signal spans found from wire bytes (by name, regex, attributes), good and
bad by the root-cause definition of an error or by duration, causes from root_cause's failures, metrics,
bounds counted."""

from __future__ import annotations

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import Telemetry
from collector.component import TraceStage
from collector.consumer import Capabilities
from collector.model import make_trace
from pipelines.slo.causes import OTHER, UNKNOWN
from pipelines.slo.processor import _latency_cause
from tests.pipelines.slo.helpers import Clock, checkout_trace, processor, resource, slo_doc, span


def test_is_a_trace_stage_that_only_looks() -> None:
    proc = processor([slo_doc("a")], Clock(), decision_wait="3s")
    assert isinstance(proc, TraceStage)
    assert proc.capabilities() == Capabilities(trace_level=True, reads_error_attribute=True)
    assert proc.buffer_settings.decision_wait == 3.0
    traces = [checkout_trace(), checkout_trace(error=True, cause="orders-db")]
    before = [bytes(c) for t in traces for c in t.chunks.values()]
    assert proc.process_traces(traces) is traces
    assert [bytes(c) for t in traces for c in t.chunks.values()] == before
    assert not any(t.decoded for t in traces)  # read from the wire: only candidate spans were decoded


def test_availability_counts_errors_by_the_root_cause_definition() -> None:
    clock = Clock()
    proc = processor([slo_doc("avail")], clock)
    tid = bytes(range(16))

    def one(**kw: object) -> Span:
        s = span("place_order", tid, **kw)  # type: ignore[arg-type]
        return s

    error_attr = one(attributes={"error": True})  # status unset + error=true: in error
    ok_wins = one(attributes={"error": "true"})
    ok_wins.status.code = Status.STATUS_CODE_OK  # status OK always wins
    string_true = one(attributes={"error": "TRUE"})
    traces = [make_trace([(resource("frontend"), [s])]) for s in
              (one(), one(error=True), error_attr, ok_wins, string_true, one(attributes={"error": False}))]
    # spans of other services or other names are not signal spans
    traces.append(make_trace([(resource("checkout"), [one(error=True)]),
                              (resource("frontend"), [span("place_orders", tid, error=True)])]))
    proc.process_traces(traces)
    assert proc.series("avail").sums(clock.now, 60) == (3, 3)


def test_latency_is_good_up_to_the_threshold_and_percentiles_come_from_the_histogram() -> None:
    clock = Clock()
    proc = processor([slo_doc("lat", sli="latency", threshold="300ms")], clock)
    proc.process_traces([checkout_trace(ms=ms) for ms in (10, 299.9, 300, 300.1, 900, 20)])
    series = proc.series("lat")
    assert series.sums(clock.now, 300) == (4, 2)
    p50, p99 = series.percentiles(clock.now, 3600, (0.5, 0.99)) or (None, None)
    assert p50 is not None and 290 <= p50 <= 310
    assert p99 is not None and 850 <= p99 <= 950


def test_selectors_by_regex_and_attributes_and_several_objectives_on_one_span() -> None:
    clock = Clock()
    regex = slo_doc("regex")
    total = regex["spec"]["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"]["spec"]
    total.pop("span_name")
    total["span_name_regex"] = "^POST /"
    gold = slo_doc("gold", attributes={"tier": "gold", "retry": 2})
    proc = processor([regex, gold, slo_doc("lat", sli="latency", threshold="1s")], clock)
    tid = bytes(16)
    traces = [
        make_trace([(resource("frontend"), [span("POST /checkout", tid, error=True), span("GET /cart", tid)])]),
        make_trace([(resource("frontend"), [span("place_order", tid, attributes={"tier": "gold", "retry": 2})])]),
        make_trace([(resource("frontend"), [span("place_order", tid, attributes={"tier": "gold"})])]),
        make_trace([(resource("frontend"), [span("place_order", tid, attributes={"tier": "gold", "retry": 3})])]),
    ]
    # the name's bytes inside an attribute value do not make a span a signal span, even encoded as a name
    decoy = span("GET /x", tid, attributes={"note": "place_order"})
    decoy.attributes.add(key="raw").value.bytes_value = b"\x2a\x0bplace_order"
    traces.append(make_trace([(resource("frontend"), [decoy])]))
    traces.append(make_trace([(resource("frontend"), [decoy, span("place_order", tid)])]))
    proc.process_traces(traces)
    assert proc.series("regex").sums(clock.now, 60) == (0, 1)
    assert proc.series("gold").sums(clock.now, 60) == (1, 0)
    assert proc.series("lat").sums(clock.now, 60) == (4, 0)  # one span, two objectives: counted in both


def test_decoded_traces_are_read_from_their_spans() -> None:
    clock = Clock()
    proc = processor([slo_doc("a")], clock)
    traces = [checkout_trace(error=True), checkout_trace()]
    for t in traces:
        t.groups()
    proc.process_traces(traces)
    assert proc.series("a").sums(clock.now, 60) == (1, 1)


def test_bad_events_are_tallied_by_their_root_cause() -> None:
    clock = Clock()
    proc = processor([slo_doc("avail"), slo_doc("lat", sli="latency", threshold="100ms")], clock)
    traces = [checkout_trace(error=True, cause="orders-db") for _ in range(3)]
    traces.append(checkout_trace(error=True, cause="payment"))
    traces.append(checkout_trace(error=True))  # no root_cause failure: unknown
    traces.append(checkout_trace(ms=500, cause="inventory", cause_kind="latency"))
    traces.append(checkout_trace(ms=500))  # no root_cause failure: the slo stage walks its critical path
    proc.process_traces(traces)
    causes = proc.series("avail").causes(clock.now, 3600)
    assert [(c.cause, c.count) for c in causes] == [("orders-db", 3), ("payment", 1), (UNKNOWN, 1)]
    assert causes[0].share == 0.6 and len(causes[0].examples) == 3
    assert causes[0].examples[0] == traces[2].trace_id.hex()  # newest first
    assert causes[0].path == ("frontend:place_order", "checkout:PlaceOrder", "orders-db:query")
    lat = proc.series("lat").causes(clock.now, 3600)
    assert sorted((c.cause, c.count) for c in lat) == [("checkout", 1), ("inventory", 1)]
    by_cause = {c.cause: c for c in lat}
    assert _latency_cause(traces[5], _signal(traces[5]).span_id, "lat") == ("inventory", by_cause["inventory"].path)
    # checkout's PlaceOrder, the leaf, holds 499 of the signal's 500 ms
    assert by_cause["checkout"].path[-1] == "checkout:oteldemo.CheckoutService/PlaceOrder 499 ms"


def test_a_failure_of_another_signal_span_in_the_trace_is_the_cause() -> None:
    clock = Clock()
    proc = processor([slo_doc("avail")], clock)
    trace = checkout_trace(error=True, cause="orders-db")
    trace.notes["root_cause.failures"][0].signal_span_id = b"\x99" * 8  # root_cause walked from the root span
    proc.process_traces([trace])
    assert [c.cause for c in proc.series("avail").causes(clock.now, 60)] == ["orders-db"]


def test_metrics_and_bounds() -> None:
    clock = Clock()
    telemetry = Telemetry()
    proc = processor([slo_doc("avail")], clock, telemetry, max_causes_per_bucket=2, examples_per_cause=1,
                     max_signals_per_trace=1)
    traces = [checkout_trace(error=True, cause=c) for c in ("a", "b", "c", "c", "a")] + [checkout_trace()]
    tid = bytes(16)
    traces.append(make_trace([(resource("frontend"), [span("place_order", tid), span("place_order", tid)])]))
    proc.process_traces(traces)

    def sample(name: str, **labels: str) -> float:
        return telemetry.registry.get_sample_value(name, labels) or 0.0

    assert sample("tracetriage_slo_events_total", slo="avail", outcome="good") == 2
    assert sample("tracetriage_slo_events_total", slo="avail", outcome="bad") == 5
    assert sample("tracetriage_slo_cause_overflow_total", slo="avail") == 2  # "c" twice: the bucket held a, b
    assert sample("tracetriage_slo_signals_skipped_total", processor="slo") == 1
    causes = proc.series("avail").causes(clock.now, 60)
    assert [(c.cause, c.count) for c in causes] == [("a", 2), (OTHER, 2), ("b", 1)]
    assert all(len(c.examples) <= 1 for c in causes)
    proc.evaluate()
    assert sample("tracetriage_slo_error_budget_remaining", slo="avail") < 0
    assert sample("tracetriage_slo_burn_rate", slo="avail", window="5m") > 100
    assert sample("tracetriage_slo_alert_firing", slo="avail", severity="page", long_window="1h",
                  short_window="5m") == 1
    assert sample("tracetriage_slo_objectives", processor="slo") == 1


def _signal(trace: object) -> Span:
    for _, s in trace.iter_spans():  # type: ignore[attr-defined]
        if s.name == "place_order":
            return s
    raise AssertionError("no signal span")


def test_error_free_traces_are_measured_from_span_headers_and_odd_encodings_are_decoded() -> None:
    from collector.model import Trace, make_origin
    from collector.wire import frame
    from pipelines.slo.select import SignalFinder

    clock = Clock()
    proc = processor([slo_doc("avail"), slo_doc("lat", sli="latency", threshold="20ms")], clock)
    fine = checkout_trace(ms=30)
    fine.maybe_error = False  # as the receiver's wire walk says of a trace without errors
    (sig,) = SignalFinder([proc.objectives[0].indicator.selector]).find(fine)
    assert sig.raw and sig._span is None and sig.end - sig.start == 30_000_000  # read from the header
    # a span whose fields are not in the canonical order: decoded, and measured the same
    odd = span("place_order", bytes(range(16)), error=True, ms=5)
    body = frame(0x2A, b"place_order") + odd.SerializeToString()  # the name first, then (again) every field
    trace = Trace(odd.trace_id, 0.0)
    trace.add(make_origin(resource("frontend")), frame(0x12, body), 1, 0, 0)
    proc.process_traces([fine, trace])
    assert proc.series("avail").sums(clock.now, 60) == (1, 1)
    assert proc.series("lat").sums(clock.now, 60) == (1, 1)  # 30 ms is slow, 5 ms fast


def test_one_selector_per_service_reads_the_only_name_and_falls_back_when_it_is_not_alone() -> None:
    clock = Clock()
    proc = processor([slo_doc("avail")], clock)
    tid = bytes(range(16))
    decoy = span("GET /x", tid)
    decoy.attributes.add(key="raw").value.bytes_value = b"\x2a\x0bplace_order"  # the name's bytes, twice in all
    root = span("place_order", tid)  # a root: no parent id in its header
    child = span("place_order", tid, parent=root.span_id, error=True)  # two signal spans in one chunk
    proc.process_traces([
        make_trace([(resource("frontend"), [root])]),
        make_trace([(resource("frontend"), [decoy, span("place_order", tid, parent=b"\x01" * 8)])]),
        make_trace([(resource("frontend"), [root, child])]),
    ])
    assert proc.series("avail").sums(clock.now, 60) == (3, 1)
