"""tail_sampling config: the contrib README example loads; every bad value is an error with its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.component import Kind
from collector.config import ConfigError, decode
from collector.config.service import build_config, load_config
from collector.registry import Registry
from pipelines.tail_sampling import factory
from pipelines.tail_sampling.config import OTTL_REFUSAL, Config
from pipelines.tail_sampling.policies import build
from pipelines.tail_sampling.policies.composite import Composite
from pipelines.tail_sampling.policies.drop import Drop
from pipelines.tail_sampling.processor import TailSamplingProcessor

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "tail_sampling_contrib_example.yaml"
PATH = "processors.tail_sampling"


def registry() -> Registry:
    reg = Registry.default(plugins=False)
    if reg.get(Kind.PROCESSOR, "tail_sampling") is None:
        reg.add(factory)
    return reg


def issues(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        decode(Config, raw, PATH)
    return [str(i) for i in err.value.issues]


def test_contrib_readme_example_loads_and_builds() -> None:
    cfg = load_config([str(EXAMPLE)], registry(), env={})
    (tail,) = cfg.processors.values()
    config = tail.config
    assert isinstance(config, Config)
    assert [p.name for p in config.policies] == [
        *(f"test-policy-{i}" for i in range(1, 13)), "and-policy-1", "drop-policy-1", "composite-policy-1"]
    assert float(config.decision_wait) == 10.0 and config.num_traces == 100
    assert config.decision_cache.sampled_cache_size == 100_000
    assert config.policies[1].type == "latency" and config.policies[1].settings.upper_threshold_ms == 10000
    policies = [build(p) for p in config.policies]
    assert isinstance(policies[13], Drop) and isinstance(policies[14], Composite)


def test_contrib_readme_example_runs(tmp_path: Path) -> None:
    from collector.component import ComponentID, Settings
    from collector.telemetry import Telemetry
    from tests.pipelines.tail_sampling.support import span, trace

    cfg = load_config([str(EXAMPLE)], registry(), env={})
    (tail,) = cfg.processors.values()
    import logging

    proc = TailSamplingProcessor(Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, Telemetry(),
                                          logging.getLogger("t")), tail.config)
    health = trace(span(attributes={"url.path": "/health"}))
    normal = trace(span())
    assert proc.process_traces([health, normal]) == [normal]  # drop-policy-1 beats always_sample


def test_contrib_readme_example_with_ottl_condition_is_refused() -> None:
    raw = {"receivers": {"otlp": {"protocols": {"grpc": None}}}, "exporters": {"debug": {}},
           "processors": {"tail_sampling": {"policies": [
               {"name": "ok", "type": "always_sample"},
               {"name": "test-policy-13", "type": "ottl_condition",
                "ottl_condition": {"error_mode": "ignore", "span": ['attributes["a"] == "b"']}}]}},
           "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["tail_sampling"],
                                                 "exporters": ["debug"]}}}}
    with pytest.raises(ConfigError) as err:
        build_config(raw, registry())
    (issue,) = err.value.issues
    assert issue.path == "processors.tail_sampling.policies[1].type"
    assert issue.message == OTTL_REFUSAL
    for word in ("not supported", "string_attribute", "numeric_attribute", "status_code", "boolean_attribute"):
        assert word in issue.message


def test_defaults_as_contrib() -> None:
    config = decode(Config, {"policies": [{"name": "a", "type": "always_sample"}]})
    assert float(config.decision_wait) == 30.0 and config.num_traces == 50000
    assert config.expected_new_traces_per_sec == 0 and not config.sample_on_first_match
    assert config.decision_cache.sampled_cache_size == 0 and config.decision_cache.non_sampled_cache_size == 0


def p(name: str, type_: str, **block: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **({type_: block} if block else {})}


BAD: list[tuple[str, dict[str, Any], str]] = [
    # (case, config, expected issue: "path: message" prefix)
    ("policies required", {}, f"{PATH}.policies: is required"),
    ("policies not empty", {"policies": []}, f"{PATH}.policies: must not be empty"),
    ("decision_wait positive", {"decision_wait": "0s", "policies": [p("a", "always_sample")]},
     f"{PATH}.decision_wait: must be > 0"),
    ("num_traces positive", {"num_traces": 0, "policies": [p("a", "always_sample")]},
     f"{PATH}.num_traces: must be > 0"),
    ("cache size", {"decision_cache": {"sampled_cache_size": -1}, "policies": [p("a", "always_sample")]},
     f"{PATH}.decision_cache.sampled_cache_size: must be >= 0"),
    ("unknown top key", {"policy": [], "policies": [p("a", "always_sample")]}, f"{PATH}.policy: unknown key"),
    ("empty name", {"policies": [{"type": "always_sample"}]}, f"{PATH}.policies[0].name: must not be empty"),
    ("duplicate name", {"policies": [p("a", "always_sample"), p("a", "always_sample")]},
     f"{PATH}.policies[1].name: duplicate policy name 'a'"),
    ("unknown type", {"policies": [p("a", "sometimes")]}, f"{PATH}.policies[0].type: must be one of"),
    ("negative threshold", {"policies": [p("x", "always_sample"), p("y", "always_sample"),
                                         p("slow", "latency", threshold_ms=-1)]},
     f"{PATH}.policies[2].latency.threshold_ms: must be >= 0"),
    ("upper below lower", {"policies": [p("s", "latency", threshold_ms=500, upper_threshold_ms=100)]},
     f"{PATH}.policies[0].latency.upper_threshold_ms: must be greater than threshold_ms (500)"),
    ("missing block", {"policies": [{"name": "s", "type": "latency"}]},
     f"{PATH}.policies[0].latency: is required for a policy of type 'latency'"),
    ("block of another type", {"policies": [{"name": "s", "type": "status_code",
                                             "status_code": {"status_codes": ["ERROR"]},
                                             "latency": {"threshold_ms": 5}}]},
     f"{PATH}.policies[0].latency: is only read by policies of type 'latency'"),
    ("bad status code", {"policies": [p("e", "status_code", status_codes=["FAILED"])]},
     f"{PATH}.policies[0].status_code.status_codes[0]: must be one of 'OK', 'ERROR', 'UNSET'"),
    ("no status codes", {"policies": [p("e", "status_code", status_codes=[])]},
     f"{PATH}.policies[0].status_code.status_codes: must list at least one"),
    ("bad regex", {"policies": [p("r", "string_attribute", key="k", values=["ok", "("],
                                  enabled_regex_matching=True)]},
     f"{PATH}.policies[0].string_attribute.values[1]: invalid regular expression '('"),
    ("string key", {"policies": [p("r", "string_attribute", values=["v"])]},
     f"{PATH}.policies[0].string_attribute.key: must not be empty"),
    ("numeric without bounds", {"policies": [p("n", "numeric_attribute", key="k")]},
     f"{PATH}.policies[0].numeric_attribute: needs min_value or max_value"),
    ("numeric min above max", {"policies": [p("n", "numeric_attribute", key="k", min_value=5, max_value=1)]},
     f"{PATH}.policies[0].numeric_attribute.min_value: must be <= max_value (1)"),
    ("negative percentage", {"policies": [p("pr", "probabilistic", sampling_percentage=-5)]},
     f"{PATH}.policies[0].probabilistic.sampling_percentage: must be >= 0"),
    ("rate limit zero", {"policies": [p("rl", "rate_limiting", spans_per_second=0)]},
     f"{PATH}.policies[0].rate_limiting.spans_per_second: must be > 0"),
    ("bytes limit", {"policies": [p("bl", "bytes_limiting", burst_capacity=10)]},
     f"{PATH}.policies[0].bytes_limiting.bytes_per_second: must be > 0"),
    ("span count range", {"policies": [p("sc", "span_count", min_spans=5, max_spans=2)]},
     f"{PATH}.policies[0].span_count.max_spans: must be >= min_spans (5)"),
    ("and without sub-policies", {"policies": [{"name": "a", "type": "and", "and": {"and_sub_policy": []}}]},
     f"{PATH}.policies[0].and.and_sub_policy: must list at least one policy"),
    ("drop inside and", {"policies": [{"name": "a", "type": "and", "and": {"and_sub_policy": [
        {"name": "d", "type": "drop"}]}}]},
     f"{PATH}.policies[0].and.and_sub_policy[0].type: must be one of"),
    ("sub-policy error path", {"policies": [{"name": "a", "type": "and", "and": {"and_sub_policy": [
        p("ok", "always_sample"), p("slow", "latency", threshold_ms="fast")]}}]},
     f"{PATH}.policies[0].and.and_sub_policy[1].latency.threshold_ms: must be an integer"),
    ("not without sub-policy", {"policies": [{"name": "n", "type": "not", "not": {}}]},
     f"{PATH}.policies[0].not.not_sub_policy: is required"),
    ("ottl inside drop", {"policies": [{"name": "d", "type": "drop", "drop": {"drop_sub_policy": [
        {"name": "o", "type": "ottl_condition", "ottl_condition": {"span": ["true"]}}]}}]},
     f"{PATH}.policies[0].drop.drop_sub_policy[0].type: {OTTL_REFUSAL}"),
    ("composite total", {"policies": [{"name": "c", "type": "composite", "composite": {
        "composite_sub_policy": [p("a", "always_sample")]}}]},
     f"{PATH}.policies[0].composite.max_total_spans_per_second: must be > 0"),
    ("composite allocation to unknown policy", {"policies": [{"name": "c", "type": "composite", "composite": {
        "max_total_spans_per_second": 10, "composite_sub_policy": [p("a", "always_sample")],
        "rate_allocation": [{"policy": "b", "percent": 10}]}}]},
     f"{PATH}.policies[0].composite.rate_allocation[0].policy: 'b' is not the name of a composite_sub_policy"),
    ("composite policy_order unknown", {"policies": [{"name": "c", "type": "composite", "composite": {
        "max_total_spans_per_second": 10, "composite_sub_policy": [p("a", "always_sample")],
        "policy_order": ["a", "z"]}}]},
     f"{PATH}.policies[0].composite.policy_order[1]: 'z' is not the name of a composite_sub_policy"),
    ("composite percent", {"policies": [{"name": "c", "type": "composite", "composite": {
        "max_total_spans_per_second": 10, "composite_sub_policy": [p("a", "always_sample")],
        "rate_allocation": [{"policy": "a", "percent": 150}]}}]},
     f"{PATH}.policies[0].composite.rate_allocation[0].percent: must be <= 100"),
    ("composite percents sum", {"policies": [{"name": "c", "type": "composite", "composite": {
        "max_total_spans_per_second": 10, "composite_sub_policy": [p("a", "always_sample"), p("b", "always_sample")],
        "rate_allocation": [{"policy": "a", "percent": 60}, {"policy": "b", "percent": 60}]}}]},
     f"{PATH}.policies[0].composite.rate_allocation: percents add up to 120"),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_invalid_values_name_their_key_path(raw: dict[str, Any], expected: str) -> None:
    found = issues(raw)
    assert any(i.startswith(expected) for i in found), found
