"""``ema_throughput``: its key, Refinery's share-out of the budget, the adjustment, the guard, bounds, and how it
composes with other policies (the goal itself over time is bench/budget.py's to show)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from collector import ComponentID, Kind, Settings, Telemetry
from collector.config import ConfigError, decode
from collector.model import Trace
from pipelines.tail_sampling import TailSamplingProcessor
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.policies.base import Decision, probability_of
from pipelines.tail_sampling.policies.ema_throughput import (
    OVERFLOW_KEY,
    EmaThroughput,
    EmaThroughputConfig,
    allocate,
    key_of,
)
from tests.pipelines.tail_sampling.support import span, trace

ERROR = Status.STATUS_CODE_ERROR


def policy(**raw: Any) -> EmaThroughput:
    return EmaThroughput("budget", decode(EmaThroughputConfig, {"field_list": ["service.name"], **raw}))


def tr(i: int, service: str = "a", spans: int = 1, status: int = Status.STATUS_CODE_UNSET) -> Trace:
    tid = i.to_bytes(16, "big")
    root = span(trace_id=tid, span_id=b"\1" * 8, status=status)
    root.name = "GET /x"
    children = [span(trace_id=tid, span_id=bytes([j + 2]) * 8, parent=b"\1" * 8) for j in range(spans - 1)]
    return trace(root, *children, resource={"service.name": service, "deployment": "prod"})


def test_key_from_fields_root_name_status_and_trace_length() -> None:
    t = tr(1, "shop", spans=3, status=ERROR)
    assert key_of(t, ("service.name", "root.name", "root.status_code"), False) == "shop|GET /x|error"
    assert key_of(t, ("name", "status_code", "deployment", "missing"), True) == "GET /x|error|prod||3"


def test_the_budget_goes_to_rare_keys_first_then_by_the_logarithm_of_the_counts() -> None:
    assert allocate({"a": 50.0, "b": 40.0}, 100.0) == {}  # everything fits
    rates = allocate({"big": 10_000.0, "mid": 1_000.0, "rare": 3.0}, 300.0)
    assert "rare" not in rates  # kept whole
    kept = 3.0 + sum(rates[k] * c for k, c in (("big", 10_000.0), ("mid", 1_000.0)))
    assert kept == pytest.approx(300.0)  # the whole budget, no more
    assert rates["big"] < rates["mid"] < 1.0  # frequent keys sampled harder
    assert rates["big"] * 10_000 > rates["mid"] * 1_000  # ... yet keep more spans (share grows with log)


def test_validation_names_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="field_list"):
        decode(EmaThroughputConfig, {})
    with pytest.raises(ConfigError, match="weight"):
        decode(EmaThroughputConfig, {"field_list": ["a"], "weight": 0})
    with pytest.raises(ConfigError, match="goal_throughput_per_sec"):
        decode(EmaThroughputConfig, {"field_list": ["a"], "goal_throughput_per_sec": -1})


def run(p: EmaThroughput, seconds: float, per_sec: dict[str, int], start: float = 0.0, step: float = 0.1,
        first_id: int = 1) -> tuple[dict[str, int], dict[str, float], int]:
    """Traces of 1 span per key at per_sec; kept spans per key, the sum of 1/p per key, next id."""
    kept: dict[str, int] = dict.fromkeys(per_sec, 0)
    weight: dict[str, float] = dict.fromkeys(per_sec, 0.0)
    carry = dict.fromkeys(per_sec, 0.0)
    i = first_id
    for n in range(round(seconds / step)):
        now = start + n * step
        for key, rate in per_sec.items():
            carry[key] += rate * step
            while carry[key] >= 1:
                carry[key] -= 1
                t = tr(i, key)
                i += 1
                if p.evaluate(t, now) is Decision.SAMPLED:
                    kept[key] += 1
                    weight[key] += 1 / probability_of(t, "budget")[0]
    return kept, weight, i


def test_initial_rate_then_adjusted_rates_near_the_goal() -> None:
    p = policy(goal_throughput_per_sec=50, adjustment_interval="5s", initial_sample_rate=4)
    kept, _, i = run(p, 5.0, {"hot": 400, "cold": 2})
    assert 300 < kept["hot"] < 700  # 2000 offered, 1 in 4 before the first adjustment
    kept, weight, _ = run(p, 20.0, {"hot": 400, "cold": 2}, start=5.0, first_id=i)
    assert kept["cold"] == 40  # rare: kept whole
    assert 50 * 20 * 0.85 < kept["hot"] + kept["cold"] < 50 * 20 * 1.15
    assert weight["hot"] == pytest.approx(400 * 20, rel=0.1)  # 1/p re-weights to the offered count
    assert 0 < p.rates()["hot"] < 0.2


def test_first_trace_of_each_key_in_an_interval_is_kept() -> None:
    p = policy(goal_throughput_per_sec=1, adjustment_interval="1s", initial_sample_rate=1000)
    kept, _, _ = run(p, 10.0, {"hot": 500, "k2": 50})
    assert kept["hot"] >= 10 and kept["k2"] >= 10  # one per interval at least, whatever the rates


def test_max_keys_bounds_the_counted_keys() -> None:
    p = policy(max_keys=3, adjustment_interval="1s")
    for i in range(20):
        p.evaluate(tr(i + 1, f"svc{i}"), 0.5)
    assert len(p._counts) == 4 and OVERFLOW_KEY in p._counts
    p.evaluate(tr(100, "x"), 1.6)
    assert len(p._averages) <= 4


def test_a_surge_is_absorbed_by_the_guard_within_seconds() -> None:
    p = policy(goal_throughput_per_sec=20, adjustment_interval="15s", initial_sample_rate=1)
    _, _, i = run(p, 40.0, {"hot": 200, "cold": 1})
    kept, _, i = run(p, 4.0, {"hot": 1000, "cold": 1}, start=40.0, first_id=i)  # 5x surge starts
    kept, _, _ = run(p, 10.0, {"hot": 1000, "cold": 1}, start=44.0, first_id=i)
    # within the same 15 s interval: the averages have not moved yet; the guard has
    assert 20 * 10 * 0.75 < sum(kept.values()) < 20 * 10 * 1.25
    assert p.guard < 0.5


def test_use_cluster_size_divides_the_goal() -> None:
    p = policy(goal_throughput_per_sec=90, use_cluster_size=True)
    assert p.goal == 90
    p.cluster_size = lambda: 3
    assert p.goal == 30
    q = policy(goal_throughput_per_sec=90)
    q.cluster_size = lambda: 3
    assert q.goal == 90  # only with use_cluster_size


def make(policies: list[dict[str, Any]]) -> TailSamplingProcessor:
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, Telemetry(), logging.getLogger("t"))
    return TailSamplingProcessor(settings, decode(Config, {"policies": policies}), None, clock=lambda: 0.0)


EMA = {"name": "budget", "type": "ema_throughput",
       "ema_throughput": {"field_list": ["service.name"], "initial_sample_rate": 5}}


def test_composes_with_and_composite_and_certain_policies() -> None:
    errors = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
    # beside status_code: an error trace is kept for certain, whatever the draw (no th)
    proc = make([EMA, errors])
    traces = [tr(i, status=ERROR) for i in range(1, 50)]
    assert proc.process_traces(traces) == traces
    assert all(not s.trace_state for t in traces for _, s in t.iter_spans())
    # inside and: kept when the draw keeps it and the other sub-policy matches, with the draw's probability
    both = {"name": "both", "type": "and", "and": {"and_sub_policy": [
        {"name": "budget", "type": "ema_throughput", "ema_throughput": {"field_list": ["service.name"],
                                                                         "initial_sample_rate": 5}},
        {"name": "prod", "type": "string_attribute", "string_attribute": {"key": "deployment", "values": ["prod"]}},
    ]}}
    traces = [tr(i) for i in range(1, 300)]
    kept = make([both]).process_traces(traces)
    assert 30 < len(kept) < 110
    ths = {s.trace_state for t in kept[1:] for _, s in t.iter_spans()}
    assert ths == {"ot=th:cccd"}  # 1 in 5: rejection 0.8 = 0x0.cccc..; the first trace is kept for certain
    # as a composite sub-policy
    comp = {"name": "comp", "type": "composite", "composite": {
        "max_total_spans_per_second": 10_000, "composite_sub_policy": [
            {"name": "budget", "type": "ema_throughput", "ema_throughput": {"field_list": ["service.name"],
                                                                             "initial_sample_rate": 5}}]}}
    traces = [tr(i) for i in range(1, 300)]
    kept = make([comp]).process_traces(traces)
    assert 30 < len(kept) < 110
    assert {s.trace_state for t in kept[1:] for _, s in t.iter_spans()} == {"ot=th:cccd"}
