"""The ``root_cause`` stage: config, notes, annotation surviving re-encoding, the metric, lifecycle."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from collector import Host, Telemetry
from collector.component import TraceStage
from collector.config import ConfigError, decode
from collector.consumer import Capabilities
from collector.errors import ComponentStartError
from collector.model import Trace
from pipelines.root_cause import FAILURES, Config, Failure, RootCauseProcessor, factory
from tests.pipelines import RecordingConsumer, make_settings
from tests.pipelines.root_cause import CLIENT, ERROR, SERVER, resource, sid, span, trace

ROOT = Path(__file__).resolve().parents[3]


def build(telemetry: Telemetry | None = None, **cfg: object) -> RootCauseProcessor:
    proc = factory.create(make_settings("root_cause", telemetry), decode(Config, cfg, "processors.root_cause"),
                          RecordingConsumer())
    assert isinstance(proc, RootCauseProcessor)
    return proc


def failing_trace() -> Trace:
    return trace(
        ("frontend", [span(1, "place_order", status=ERROR, kind=SERVER,
                           attrs={"rootcause.service": "stale", "http.route": "/order"})]),
        ("checkout", [span(2, "PlaceOrder", 1, status=ERROR, kind=SERVER)]),
        (resource("payment", service_owner="group:checkout"), [
            span(3, "Charge", 2, status=ERROR, kind=SERVER),
            span(4, "INSERT", 3, status=ERROR, kind=CLIENT, attrs={"peer.service": "orders-db"}),
        ]),
    )


def decoded_spans(t: Trace) -> dict[bytes, dict[str, AnyValue]]:
    out = {}
    for _, chunk in t.wire_chunks():
        for s in ScopeSpans.FromString(bytes(chunk)).spans:
            out[s.span_id] = {kv.key: kv.value for kv in s.attributes}
    return out


# -- config -----------------------------------------------------------------------------------------


def test_defaults_and_stage_attributes() -> None:
    proc = build()
    assert isinstance(proc, TraceStage)
    # It reads error=true attributes; with annotate (the default) it writes rootcause.* on signal spans.
    assert proc.capabilities() == Capabilities(mutates_data=True, trace_level=True, reads_error_attribute=True)
    assert proc.buffer_settings.decision_wait == 10.0
    proc = build(annotate=False, decision_wait="2s")
    assert proc.capabilities() == Capabilities(trace_level=True, reads_error_attribute=True)
    assert proc.buffer_settings.decision_wait == 2.0


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"signals": [{"name": "x"}]}, "processors.root_cause.signals[0]: needs at least one"),
        ({"signals": [{"service": "a"}]}, "processors.root_cause.signals[0].name: is required"),
        ({"signals": [{"name": "x", "span_name_regex": "("}]}, "signals[0].span_name_regex: invalid regular"),
        ({"signals": [{"name": "x", "span_name": "a", "span_name_regex": "a"}]}, "not both"),
        ({"signals": [{"name": "x", "service": "a"}, {"name": "x", "service": "b"}]}, "signals[1].name"),
        ({"decision_wait": "0s"}, "decision_wait: must be > 0"),
        ({"ownership": {"default_team": ""}}, "ownership.default_team: must not be empty"),
        ({"ownership": {"catalog": "x.yaml"}}, "ownership.catalog: must be a list"),
        ({"ownership": {"reload_interval": "-1s"}}, "ownership.reload_interval"),
        ({"annotated": True}, "annotated: unknown key"),
    ],
)
def test_config_errors(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, raw, "processors.root_cause")
    assert where in str(info.value)


# -- processing -------------------------------------------------------------------------------------


def test_notes_annotation_and_reencoding() -> None:
    proc = build(signals=[{"name": "checkout", "service": "frontend", "span_name": "place_order"}])
    t = failing_trace()
    assert proc.process_traces([t]) == [t]
    failures = t.notes[FAILURES]
    assert len(failures) == 1 and isinstance(failures[0], Failure)
    assert failures[0].signal == "checkout" and failures[0].primary.service == "orders-db"
    attrs = decoded_spans(t)[sid(1)]  # as it leaves the buffer: re-encoded from the changed messages
    assert attrs["rootcause.service"].string_value == "orders-db"  # the stale value was replaced
    assert attrs["rootcause.span_name"].string_value == "INSERT"
    assert attrs["rootcause.span_id"].string_value == sid(4).hex()
    assert attrs["rootcause.depth"].int_value == 3
    assert [v.string_value for v in attrs["rootcause.path"].array_value.values] == [
        "frontend:place_order", "checkout:PlaceOrder", "payment:Charge", "payment:INSERT"]
    assert attrs["rootcause.kind"].string_value == "error" and "rootcause.self_time_ms" not in attrs
    assert attrs["http.route"].string_value == "/order"
    spans = [s for g in t.groups() for s in g.scope_spans.spans if s.span_id == sid(1)]
    assert [kv.key for kv in spans[0].attributes].count("rootcause.service") == 1


def test_annotate_false_leaves_spans_alone() -> None:
    proc = build(annotate=False)
    t = failing_trace()
    before = {o: bytes(c) for o, c in t.wire_chunks()}
    proc.process_traces([t])
    assert t.notes[FAILURES][0].primary.span_id == sid(4)
    assert {o: bytes(c) for o, c in t.wire_chunks()} == before


def test_error_free_traces_pass_untouched() -> None:
    proc = build()
    t = trace(("frontend", [span(1, "place_order", attrs={"k": "v"})]), ("checkout", [span(2, "x", 1)]))
    before = {o: bytes(c) for o, c in t.wire_chunks()}
    assert proc.process_traces([t]) == [t]
    assert FAILURES not in t.notes
    assert {o: bytes(c) for o, c in t.wire_chunks()} == before


def test_metric_team_unknown_without_ownership() -> None:
    telemetry = Telemetry()
    build(telemetry).process_traces([failing_trace(), failing_trace()])
    labels = {"signal": "root", "service": "orders-db", "team": "unknown", "kind": "error"}
    assert telemetry.registry.get_sample_value("tracetriage_root_causes_total", labels) == 2


async def test_metric_team_from_ownership(tmp_path: Path) -> None:
    telemetry = Telemetry()
    catalog = ROOT / "configs" / "catalog" / "*.yaml"
    proc = build(telemetry, ownership={"catalog": [str(catalog)], "resource_attribute": "service.owner"})
    await proc.start(Host())
    try:
        # orders-db is blamed: the caller's service.owner (checkout) does not apply to the callee.
        proc.process_traces([failing_trace()])
        labels = {"signal": "root", "service": "orders-db", "team": "data", "kind": "error"}
        assert telemetry.registry.get_sample_value("tracetriage_root_causes_total", labels) == 1
        # payment itself is the root cause: its resource's service.owner wins over the catalog.
        t = trace((resource("payment", service_owner="group:checkout"), [span(3, "Charge", status=ERROR)]))
        proc.process_traces([t])
        labels = {"signal": "root", "service": "payment", "team": "checkout", "kind": "error"}
        assert telemetry.registry.get_sample_value("tracetriage_root_causes_total", labels) == 1
    finally:
        await proc.shutdown()
        await proc.shutdown()


async def test_start_fails_when_no_catalog_file_loads(tmp_path: Path) -> None:
    proc = build(ownership={"catalog": [str(tmp_path / "missing.yaml")]})
    with pytest.raises(ComponentStartError, match=r"missing\.yaml not found"):
        await proc.start(Host())
    await proc.shutdown()


async def test_shutdown_before_start() -> None:
    await build(ownership={"catalog": []}).shutdown()


def test_string_attribute_error_true_is_annotated() -> None:
    proc = build()
    s = span(1, "job", attrs={"error": "True"})
    s.attributes.append(KeyValue(key="other", value=AnyValue(string_value="x")))
    t = trace(("worker", [s]))
    proc.process_traces([t])
    assert decoded_spans(t)[sid(1)]["rootcause.service"].string_value == "worker"
