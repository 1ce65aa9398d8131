"""The tail_sampling stage: vote combination as in contrib, kept traces in order, notes, metrics, settings."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from collector.component import ComponentID, Kind, Settings, TraceStage
from collector.config import decode
from collector.consumer import Capabilities, TraceBufferSettings
from collector.model import Trace, make_origin
from collector.telemetry import Telemetry
from pipelines.tail_sampling import TailSamplingProcessor, factory
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.processor import NOTE_POLICY
from tests.pipelines.tail_sampling.support import span, trace

ERROR = Status.STATUS_CODE_ERROR


def make(raw: dict[str, Any], name: str = "", clock: float = 0.0) -> tuple[TailSamplingProcessor, Telemetry]:
    telemetry = Telemetry()
    settings = Settings(ComponentID("tail_sampling", name), Kind.PROCESSOR, telemetry, logging.getLogger("t"))
    return TailSamplingProcessor(settings, decode(Config, raw), None, clock=lambda: clock), telemetry


def metric(telemetry: Telemetry, name: str, **labels: str) -> float:
    """A sample's value (counters are exposed with the ``_total`` suffix)."""
    full = "otelcol_processor_tail_sampling_" + name
    value = telemetry.registry.get_sample_value(full, labels)
    if value is None:
        value = telemetry.registry.get_sample_value(full + "_total", labels)
    return value or 0.0


def pol(name: str, type_: str, **block: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **({type_: block} if block else {})}


ERRORS = pol("errors", "status_code", status_codes=["ERROR"])
SLOW = pol("slow", "latency", threshold_ms=500)
BOOL = pol("flag", "boolean_attribute", key="flag", value=True)
NOT_FLAG_INV = pol("inv", "boolean_attribute", key="flag", value=True, invert_match=True)
DROP_HEALTH = {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
    pol("health", "string_attribute", key="url.path", values=["/health"])]}}


def error_trace(**attrs: Any) -> Trace:
    return trace(span(status=ERROR, attributes=attrs))


CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], Trace, bool, str]] = [
    # (case, policies, extra config, trace, kept, deciding policy)
    ("any sampled vote keeps", [SLOW, ERRORS], {}, error_trace(), True, "errors"),
    ("no vote to sample drops", [SLOW, ERRORS], {}, trace(span()), False, ""),
    ("first sampling policy is noted", [ERRORS, pol("all", "always_sample")], {}, error_trace(), True, "errors"),
    ("drop vote wins over sampled", [ERRORS, DROP_HEALTH], {}, error_trace(**{"url.path": "/health"}), False,
     "no-health"),
    ("drop policy not matching", [ERRORS, DROP_HEALTH], {}, error_trace(**{"url.path": "/x"}), True, "errors"),
    ("inverted not sampled beats sampled", [ERRORS, NOT_FLAG_INV], {}, error_trace(flag=True), False, "inv"),
    ("inverted sampled keeps without a not-sampled vote", [NOT_FLAG_INV], {}, trace(span()), True, "inv"),
    ("inverted sampled loses to a not-sampled vote", [NOT_FLAG_INV, SLOW], {}, trace(span()), False, ""),
    ("sample_on_first_match", [ERRORS, DROP_HEALTH], {"sample_on_first_match": True},
     error_trace(**{"url.path": "/health"}), False, "no-health"),  # drop policies still run first
    ("not policy", [{"name": "ok", "type": "not", "not": {"not_sub_policy": ERRORS}}], {}, trace(span()), True,
     "ok"),
]


@pytest.mark.parametrize(("policies", "extra", "t", "kept", "decider"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_combination(policies: list[dict[str, Any]], extra: dict[str, Any], t: Trace, kept: bool,
                     decider: str) -> None:
    proc, _ = make({"policies": policies, **extra})
    assert proc.process_traces([t]) == ([t] if kept else [])
    entry = proc.ring.get(t.trace_id)
    assert entry is not None and entry.policy == decider
    assert t.note(NOTE_POLICY) == (decider if kept else None)  # (noted only on a trace passed on)


def test_drop_policies_run_first_and_stop_evaluation() -> None:
    proc, tel = make({"policies": [ERRORS, DROP_HEALTH]})
    assert [p.name for p in proc.policies] == ["no-health", "errors"]
    proc.process_traces([error_trace(**{"url.path": "/health"})])
    assert metric(tel, "count_traces_sampled", policy="no-health", sampled="false", decision="dropped") == 1
    assert metric(tel, "count_traces_sampled", policy="errors", sampled="true", decision="sampled") == 0


def test_sample_on_first_match_skips_later_policies() -> None:
    proc, tel = make({"policies": [ERRORS, SLOW], "sample_on_first_match": True})
    assert len(proc.process_traces([error_trace()])) == 1
    assert metric(tel, "count_traces_sampled", policy="errors", sampled="true", decision="sampled") == 1
    assert metric(tel, "count_traces_sampled", policy="slow", sampled="false", decision="not_sampled") == 0
    proc2, tel2 = make({"policies": [ERRORS, SLOW]})
    proc2.process_traces([error_trace()])
    assert metric(tel2, "count_traces_sampled", policy="slow", sampled="false", decision="not_sampled") == 1


def test_kept_traces_keep_their_order_and_metrics_are_counted() -> None:
    proc, tel = make({"policies": [ERRORS, SLOW]}, name="edge")
    traces = [error_trace(), trace(span()), trace(span(0, 600)), error_trace(),
              trace(span(), span(span_id=b"2" * 8))]
    kept = proc.process_traces(traces)
    assert kept == [traces[0], traces[2], traces[3]]
    assert metric(tel, "global_count_traces_sampled", sampled="true", decision="sampled") == 3
    assert metric(tel, "global_count_traces_sampled", sampled="false", decision="not_sampled") == 2
    # Policy labels carry the component name, as contrib's "<name>.<policy>".
    assert metric(tel, "count_traces_sampled", policy="edge.errors", sampled="true", decision="sampled") == 2
    assert metric(tel, "count_traces_sampled", policy="edge.errors", sampled="false", decision="not_sampled") == 3
    assert metric(tel, "count_spans_sampled", policy="edge.errors", sampled="false", decision="not_sampled") == 4
    assert metric(tel, "count_traces_sampled", policy="edge.slow", sampled="true", decision="sampled") == 1
    assert metric(tel, "sampling_decision_latency_count", policy="edge.errors") >= 1
    assert b"otelcol_processor_tail_sampling_sampling_decision_latency_bucket" in tel.exposition()


def test_evaluation_errors_are_counted_and_do_not_vote() -> None:
    proc, tel = make({"policies": [ERRORS, pol("all", "always_sample")]})
    broken = Trace(b"\1" * 16, 0.0)
    # truncated span bytes
    broken.add(make_origin(trace(span()).groups()[0].resource), b"\x12\x05\x18\x02\xff", 1, 0, 0)
    assert proc.process_traces([broken]) == [broken]  # always_sample does not read spans
    assert broken.notes[NOTE_POLICY] == "all"
    assert metric(tel, "sampling_policy_evaluation_error") == 1


def test_an_error_in_a_batch_vote_falls_back_to_votes_one_by_one() -> None:
    # status_code votes on all the traces of a round at once; a trace it cannot read makes that call raise,
    # and then each trace is evaluated alone: the others keep their votes, one error is counted.
    proc, tel = make({"policies": [ERRORS]})
    broken = Trace(b"\1" * 16, 0.0)
    broken.add(make_origin(trace(span()).groups()[0].resource), b"\x12\x05\x18\x02\xff", 1, 0, 0)
    failed, clean = error_trace(), trace(span())
    assert proc.process_traces([failed, broken, clean]) == [failed]
    assert metric(tel, "sampling_policy_evaluation_error") == 1
    assert metric(tel, "count_traces_sampled", policy="errors", sampled="true", decision="sampled") == 1
    assert metric(tel, "count_traces_sampled", policy="errors", sampled="false", decision="not_sampled") == 1


def test_rate_policies_use_the_clock() -> None:
    proc, _ = make({"policies": [pol("rl", "rate_limiting", spans_per_second=3)]}, clock=50.0)
    traces = [trace(span()) for _ in range(4)]
    assert len(proc.process_traces(traces)) == 2  # 1, 2 < 3; 3 is not < 3


def test_stage_contract_and_buffer_settings() -> None:
    proc, _ = make({
        "policies": [ERRORS], "decision_wait": "5s", "num_traces": 10, "expected_new_traces_per_sec": 7,
        "decision_cache": {"sampled_cache_size": 100, "non_sampled_cache_size": 200}, "block_on_overflow": True,
        "decision_wait_after_root_received": "1s", "maximum_trace_size_bytes": "1MiB",
        "drop_pending_traces_on_shutdown": True,
    })
    assert isinstance(proc, TraceStage)
    assert proc.capabilities() == Capabilities(trace_level=True, defines_buffer=True)
    assert proc.buffer_settings == TraceBufferSettings(
        decision_wait=5.0, num_traces=10, expected_new_traces_per_sec=7, sampled_cache_size=100,
        non_sampled_cache_size=200, block_on_overflow=True, decision_wait_after_root_received=1.0,
        maximum_trace_size_bytes=1024 * 1024, drop_pending_traces_on_shutdown=True,
    )
    defaults, _ = make({"policies": [ERRORS]})
    assert defaults.buffer_settings == TraceBufferSettings()  # contrib defaults: 30s, 50000, caches off


async def test_factory_and_lifecycle() -> None:
    assert factory.type == "tail_sampling" and factory.kind is Kind.PROCESSOR and factory.config_class is Config
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, Telemetry(), logging.getLogger("t"))

    class Sink:
        def capabilities(self) -> Capabilities:
            return Capabilities()

        async def consume_traces(self, batch: Any) -> None:
            return None

    proc = factory.create(settings, decode(Config, {"policies": [ERRORS]}), Sink())
    assert isinstance(proc, TailSamplingProcessor)
    await proc.shutdown()  # before start: fine
    await proc.start(None)  # type: ignore[arg-type]
    await proc.shutdown()
    await proc.shutdown()
