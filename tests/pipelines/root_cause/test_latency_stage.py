"""The latency walk through the ``root_cause`` stage: config, notes, annotations from the wire bytes,
failing-and-slow signals, a failing and a slow signal in one trace, the metric."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from collector import Telemetry
from collector.config import ConfigError, decode
from collector.model import Trace
from pipelines.root_cause import FAILURES, LATENCY, Config, Failure, RootCauseProcessor, factory
from tests.pipelines import RecordingConsumer, make_settings
from tests.pipelines.root_cause import CLIENT, ERROR, SERVER, sid, span, trace

MS = 1_000_000


def build(telemetry: Telemetry | None = None, **cfg: object) -> RootCauseProcessor:
    proc = factory.create(make_settings("root_cause", telemetry), decode(Config, cfg, "processors.root_cause"),
                          RecordingConsumer())
    assert isinstance(proc, RootCauseProcessor)
    return proc


def slow_trace(root_status: int = 0, order_status: int = 0, end: int = 900 * MS) -> Trace:
    """POST /checkout -> place_order -> (checkout) PlaceOrder -> INSERT orders (CLIENT to orders-db, 700 ms)."""
    return trace(
        ("frontend", [span(1, "POST /checkout", start=0, end=end, kind=SERVER, status=root_status,
                           attrs={"rootcause.service": "stale", "rootcause.kind": "error", "http.route": "/checkout"}),
                      span(2, "place_order", 1, start=10 * MS, end=end - 10 * MS, status=order_status)]),
        ("checkout", [span(3, "PlaceOrder", 2, start=20 * MS, end=end - 20 * MS, kind=SERVER),
                      span(4, "GetCart", 3, start=25 * MS, end=45 * MS, kind=CLIENT,
                           attrs={"peer.service": "cart"}),
                      span(5, "INSERT orders", 3, start=50 * MS, end=750 * MS, kind=CLIENT,
                           attrs={"db.system": "postgresql", "peer.service": "orders-db"})]),
    )


def attributes(t: Trace) -> dict[bytes, dict[str, AnyValue]]:
    out = {}
    for _, chunk in t.wire_chunks():
        for s in ScopeSpans.FromString(bytes(chunk)).spans:
            out[s.span_id] = {kv.key: kv.value for kv in s.attributes}
    return out


def test_config_latency_thresholds() -> None:
    cfg = decode(Config, {"latency_threshold": "500ms"})
    assert cfg.latency_threshold == 0.5
    cfg = decode(Config, {"signals": [{"name": "checkout", "span_name": "place_order", "latency_threshold": "1s"}]})
    assert cfg.signals[0].latency_threshold == 1.0 and cfg.latency_threshold == 0.0
    assert decode(Config, {}).latency_threshold == 0.0


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"latency_threshold": "-1s"}, "processors.root_cause.latency_threshold: must be >= 0"),
        ({"latency_threshold": 500}, "processors.root_cause.latency_threshold: duration 500 needs a unit"),
        ({"latency_threshold": "1s", "signals": [{"name": "x", "service": "a"}]},
         "processors.root_cause.latency_threshold: applies to the default signal"),
        ({"signals": [{"name": "x", "service": "a", "latency_threshold": "-5ms"}]},
         "processors.root_cause.signals[0].latency_threshold: must be >= 0"),
    ],
)
def test_config_errors(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, raw, "processors.root_cause")
    assert where in str(info.value)


def test_slow_root_gets_notes_and_annotations_from_the_wire() -> None:
    proc = build(latency_threshold="500ms")
    t = slow_trace()
    before = attributes(t)
    assert proc.process_traces([t]) == [t]
    assert not t.decoded  # indexed and annotated on the wire bytes
    (failure,) = t.notes[FAILURES]
    assert isinstance(failure, Failure) and failure.kind == LATENCY
    assert (failure.signal, failure.signal_span_name, failure.duration_ms, failure.threshold_ms) == (
        "root", "POST /checkout", 900.0, 500.0)
    cause = failure.primary
    assert (cause.service, cause.span_name, cause.span_service, cause.blamed_callee) == (
        "orders-db", "INSERT orders", "checkout", True)
    assert cause.self_time_ms == 700.0 and cause.depth == 3
    assert [s.span for s in failure.critical_path] == [
        "frontend:POST /checkout", "frontend:place_order", "checkout:PlaceOrder", "checkout:GetCart",
        "checkout:INSERT orders"]
    after = attributes(t)
    attrs = after[sid(1)]
    assert attrs["rootcause.service"].string_value == "orders-db"  # the stale values were replaced
    assert attrs["rootcause.kind"].string_value == "latency"
    assert attrs["rootcause.self_time_ms"].double_value == 700.0
    assert attrs["rootcause.span_name"].string_value == "INSERT orders"
    assert attrs["rootcause.span_id"].string_value == sid(5).hex()
    assert attrs["rootcause.depth"].int_value == 3
    assert [v.string_value for v in attrs["rootcause.path"].array_value.values] == [
        "frontend:POST /checkout", "frontend:place_order", "checkout:PlaceOrder", "checkout:INSERT orders"]
    assert attrs["http.route"].string_value == "/checkout"
    assert sum(k.startswith("rootcause.") for k in attrs) == 7
    assert {k: v for k, v in after.items() if k != sid(1)} == {k: v for k, v in before.items() if k != sid(1)}


def test_fast_traces_and_no_threshold_leave_traces_alone() -> None:
    for proc, t in ((build(latency_threshold="900ms"), slow_trace()),  # 900 ms is not longer than 900 ms
                    (build(), slow_trace()),
                    (build(latency_threshold="500ms"), slow_trace(end=400 * MS))):
        before = {o: bytes(c) for o, c in t.wire_chunks()}
        assert proc.process_traces([t]) == [t]
        assert t.note(FAILURES) is None
        assert {o: bytes(c) for o, c in t.wire_chunks()} == before


def test_failing_and_slow_signal_keeps_the_error_walk() -> None:
    proc = build(latency_threshold="500ms")
    t = slow_trace(root_status=ERROR, order_status=ERROR)
    proc.process_traces([t])
    (failure,) = t.notes[FAILURES]
    assert failure.kind == "error" and failure.primary.span_name == "place_order"
    attrs = attributes(t)[sid(1)]
    assert attrs["rootcause.kind"].string_value == "error" and "rootcause.self_time_ms" not in attrs


@pytest.mark.parametrize("decoded", [False, True])
def test_a_failing_signal_and_a_slow_signal_in_one_trace(decoded: bool) -> None:
    telemetry = Telemetry()
    proc = build(telemetry, signals=[
        {"name": "checkout", "service": "frontend", "span_name": "POST /checkout", "latency_threshold": "500ms"},
        {"name": "order", "span_name": "place_order", "latency_threshold": "2s"},
    ])
    t = slow_trace(order_status=ERROR)  # place_order fails (handled: the request succeeds, slowly)
    if decoded:
        t.groups()
    proc.process_traces([t])
    error, latency = t.notes[FAILURES]
    assert (error.kind, error.signal, error.primary.span_name) == ("error", "order", "place_order")
    assert (latency.kind, latency.signal, latency.primary.service) == ("latency", "checkout", "orders-db")
    attrs = attributes(t)
    assert attrs[sid(1)]["rootcause.kind"].string_value == "latency"
    assert attrs[sid(2)]["rootcause.kind"].string_value == "error"
    assert attrs[sid(2)]["rootcause.service"].string_value == "frontend"
    get = telemetry.registry.get_sample_value
    assert get("tracetriage_root_causes_total",
               {"signal": "checkout", "service": "orders-db", "team": "unknown", "kind": "latency"}) == 1
    assert get("tracetriage_root_causes_total",
               {"signal": "order", "service": "frontend", "team": "unknown", "kind": "error"}) == 1


def test_annotate_false_leaves_spans_alone_but_notes_the_cause() -> None:
    proc = build(latency_threshold="500ms", annotate=False)
    t = slow_trace()
    before = {o: bytes(c) for o, c in t.wire_chunks()}
    proc.process_traces([t])
    assert t.notes[FAILURES][0].primary.service == "orders-db"
    assert {o: bytes(c) for o, c in t.wire_chunks()} == before


def test_decoded_trace_is_annotated_through_its_messages() -> None:
    proc = build(latency_threshold="500ms")
    t = slow_trace()
    t.groups()  # an earlier stage decoded it: the messages are what the trace sends
    proc.process_traces([t])
    assert attributes(t)[sid(1)]["rootcause.service"].string_value == "orders-db"


def test_slow_signals_beyond_the_limit_are_counted() -> None:
    telemetry = Telemetry()
    proc = build(telemetry, latency_threshold="100ms", max_signals_per_trace=1)
    t = trace(("batch", [span(n, f"job{n}", start=0, end=(200 + n) * MS) for n in range(1, 4)]))
    proc.process_traces([t])
    assert len(t.notes[FAILURES]) == 1
    assert telemetry.registry.get_sample_value("tracetriage_root_cause_signals_skipped_total",
                                               {"processor": "root_cause"}) == 2
