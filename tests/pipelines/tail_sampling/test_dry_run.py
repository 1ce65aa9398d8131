"""``dry_run``: nothing is dropped, and each span is marked with the decision the same config would make."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Status

from collector import ComponentID, Kind, Settings, Telemetry
from collector.config import decode
from collector.model import Trace
from pipelines.tail_sampling import TailSamplingProcessor
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.processor import NOTE_POLICY
from tests.pipelines.tail_sampling.support import span, trace

POLICIES: list[dict[str, Any]] = [
    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
    {"name": "some", "type": "probabilistic", "probabilistic": {"sampling_percentage": 30}},
    {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
        {"name": "health", "type": "string_attribute",
         "string_attribute": {"key": "url.path", "values": ["/health"]}}]}},
    {"name": "budget", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 40}},
]


def make(dry_run: bool) -> tuple[TailSamplingProcessor, Telemetry]:
    telemetry = Telemetry()
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, telemetry, logging.getLogger("t"))
    cfg = decode(Config, {"policies": POLICIES, "dry_run": dry_run})
    return TailSamplingProcessor(settings, cfg, None, clock=lambda: 0.0), telemetry


def traffic() -> list[Trace]:
    out = []
    for i in range(300):
        attrs = {"url.path": "/health" if i % 7 == 0 else "/shop"}
        status = Status.STATUS_CODE_ERROR if i % 11 == 0 else Status.STATUS_CODE_UNSET
        out.append(trace(*[span(trace_id=(i * 7919 + 13).to_bytes(16, "big"), span_id=bytes([j + 1]) * 8,
                                attributes=attrs, status=status) for j in range(1 + i % 3)]))
    return out


def marks(t: Trace) -> set[tuple[bool, str]]:
    found = set()
    for g in t.groups():
        scope = ScopeSpans.FromString(g.origin.scope_fields).scope
        values = {kv.key: kv.value for kv in scope.attributes}
        found.add((values["tailsampling.dry_run.kept"].bool_value, values["tailsampling.dry_run.policy"].string_value))
    return found


def dry(telemetry: Telemetry, name: str, decision: str) -> float:
    return telemetry.registry.get_sample_value(f"tracetriage_tail_sampling_dry_run_{name}_total",
                                               {"processor": "tail_sampling", "decision": decision}) or 0.0


def test_dry_run_drops_nothing_and_marks_exactly_what_the_same_config_drops() -> None:
    real, _ = make(dry_run=False)
    trial, telemetry = make(dry_run=True)
    real_traces, trial_traces = traffic(), traffic()
    kept = {t.trace_id for t in real.process_traces(real_traces)}
    assert 0 < len(kept) < len(real_traces)
    out = trial.process_traces(trial_traces)
    assert out == trial_traces  # nothing dropped, in order
    def decider(t: Trace) -> str:  # (the real run's deciding policy, from its recent-decisions ring)
        entry = real.ring.get(t.trace_id)
        assert entry is not None
        return entry.policy

    for before, t in zip(real_traces, out, strict=True):
        assert marks(t) == {(before.trace_id in kept, decider(before))}
        assert t.note(NOTE_POLICY) == decider(before)  # (noted on every trace a dry run passes on)
        assert t.span_count == before.span_count
        assert not any(s.trace_state for _, s in t.iter_spans())  # nothing else written
    dropped = [t for t in real_traces if t.trace_id not in kept]
    assert dry(telemetry, "traces", "kept") == len(kept)
    assert dry(telemetry, "traces", "dropped") == len(dropped)
    assert dry(telemetry, "spans", "dropped") == sum(t.span_count for t in dropped)
    # the policy counters are the real run's: drops per policy, as without dry_run
    value = telemetry.registry.get_sample_value(
        "otelcol_processor_tail_sampling_count_traces_sampled_total",
        {"policy": "no-health", "sampled": "false", "decision": "dropped"})
    assert value == sum(1 for t in real_traces if decider(t) == "no-health")


def test_a_dry_run_is_noted_when_the_config_is_loaded() -> None:
    cfg = decode(Config, {"policies": POLICIES, "dry_run": True})
    assert [path for path, _ in cfg.warnings()] == ["dry_run"]
    assert list(decode(Config, {"policies": POLICIES}).warnings()) == []
