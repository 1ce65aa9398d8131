"""rate_limiting, bytes_limiting and composite: budgets per second driven by the ``now`` handed in."""

from __future__ import annotations

from typing import Any

import pytest

from collector.config import decode
from collector.model import Trace
from pipelines.tail_sampling.config import PolicyConfig
from pipelines.tail_sampling.policies import Decision, build
from pipelines.tail_sampling.policies.bytes_limiting import BytesLimiting, BytesLimitingConfig
from pipelines.tail_sampling.policies.composite import Composite, CompositeConfig, allocate
from pipelines.tail_sampling.policies.rate_limiting import RateLimiting, RateLimitingConfig
from tests.pipelines.tail_sampling.support import cfg, span, trace

S, N = Decision.SAMPLED, Decision.NOT_SAMPLED


def spans(n: int, **kw: Any) -> Trace:
    return trace(*(span(span_id=i.to_bytes(8, "big"), **kw) for i in range(1, n + 1)))


def test_rate_limiting_counts_spans_per_second_strictly_below_the_limit() -> None:
    policy = RateLimiting("p", cfg(RateLimitingConfig, spans_per_second=10))
    three = spans(3)
    assert [policy.evaluate(three, 100.0) for _ in range(4)] == [S, S, S, N]  # 3, 6, 9; 12 is not < 10
    assert policy.evaluate(spans(1), 100.9) is N  # 9 + 1 is not < 10
    assert policy.evaluate(three, 101.0) is S  # a new second
    assert policy.evaluate(spans(10), 102.0) is N  # a trace of spans_per_second spans never fits


def test_bytes_limiting_token_bucket() -> None:
    t = spans(2)
    size = t.byte_size
    policy = BytesLimiting("p", cfg(BytesLimitingConfig, bytes_per_second=size, burst_capacity=3 * size))
    assert [policy.evaluate(t, 10.0) for _ in range(4)] == [S, S, S, N]  # the bucket starts full (burst)
    assert policy.evaluate(t, 10.5) is N  # half a trace refilled
    assert policy.evaluate(t, 11.0) is S  # one trace refilled
    assert policy.evaluate(t, 1000.0) is S  # refill stops at the burst capacity ...
    assert [policy.evaluate(t, 1000.0) for _ in range(3)] == [S, S, N]
    assert policy.evaluate(t, 999.0) is N  # time going back adds nothing


def test_bytes_limiting_default_burst_and_too_large_traces() -> None:
    t = spans(4)
    policy = BytesLimiting("p", cfg(BytesLimitingConfig, bytes_per_second=t.byte_size // 3))
    assert policy.bucket.capacity == 2 * (t.byte_size // 3)
    assert policy.evaluate(t, 0.0) is N  # larger than the whole bucket: never
    assert policy.evaluate(spans(1), 0.0) is S


def composite(raw: dict[str, Any]) -> Composite:
    policy = build(decode(PolicyConfig, {"name": "c", "type": "composite", "composite": raw}))
    assert isinstance(policy, Composite)
    return policy


TAG_0_100 = {"name": "tag", "type": "numeric_attribute", "numeric_attribute": {"key": "tag", "min_value": 1,
                                                                                 "max_value": 100}}
ALWAYS = {"name": "always", "type": "always_sample"}


def test_composite_not_sampled_when_no_sub_policy_samples() -> None:
    c = composite({"max_total_spans_per_second": 1000, "composite_sub_policy": [
        TAG_0_100, {**TAG_0_100, "name": "tag2", "numeric_attribute": {"key": "tag", "min_value": 200}}],
        "rate_allocation": [{"policy": "tag", "percent": 10}, {"policy": "tag2", "percent": 10}]})
    assert c.evaluate(spans(1), 0.0) is N


def test_composite_sampled_by_second_sub_policy() -> None:
    c = composite({"max_total_spans_per_second": 1000, "composite_sub_policy": [TAG_0_100, ALWAYS],
                   "rate_allocation": [{"policy": "tag", "percent": 10}, {"policy": "always", "percent": 10}]})
    assert c.evaluate(spans(1), 0.0) is S
    assert c.last_sub == "always"


def test_composite_overflow_of_the_matching_sub_policy_does_not_fall_through() -> None:
    # contrib's OverflowAlwaysSampled: total 3, one span per second for each sub-policy.
    c = composite({"max_total_spans_per_second": 3, "composite_sub_policy": [TAG_0_100, ALWAYS],
                   "rate_allocation": [{"policy": "tag", "percent": 34}, {"policy": "always", "percent": 34}]})
    assert c.evaluate(spans(1, attributes={"tag": 10}), 0.0) is S
    assert c.evaluate(spans(1, attributes={"tag": 11}), 0.0) is N  # tag's budget is spent; no fall-through
    assert c.evaluate(spans(1, attributes={"tag": 1001}), 0.0) is S  # tag does not match: always samples


def test_composite_throttles_per_second() -> None:
    c = composite({"max_total_spans_per_second": 10, "composite_sub_policy": [TAG_0_100, ALWAYS],
                   "rate_allocation": [{"policy": "tag", "percent": 50}, {"policy": "always", "percent": 50}]})
    one = spans(1)
    assert [c.evaluate(one, 5.0) for _ in range(10)] == [S] * 5 + [N] * 5
    assert [c.evaluate(one, 6.2) for _ in range(6)] == [S] * 5 + [N]
    big = spans(6)
    assert c.evaluate(big, 7.0) is N  # above the sub-policy's budget of 5, even in a fresh second
    assert c.evaluate(one, 7.0) is S  # nothing was counted for the refused trace


def test_composite_inverted_sample_counts_as_sample() -> None:
    c = composite({"max_total_spans_per_second": 10, "composite_sub_policy": [
        {"name": "a", "type": "string_attribute", "string_attribute": {"key": "tag", "values": ["foo"]}},
        {"name": "b", "type": "string_attribute",
         "string_attribute": {"key": "tag", "values": ["foo"], "invert_match": True}}],
        "rate_allocation": [{"policy": "a", "percent": 50}, {"policy": "b", "percent": 50}]})
    assert c.evaluate(spans(1), 0.0) is S


def test_composite_total_caps_all_sub_policies_together() -> None:
    c = composite({"max_total_spans_per_second": 4, "composite_sub_policy": [TAG_0_100, ALWAYS]})
    # No rate_allocation: both may use all 4, the total still holds.
    assert [c.evaluate(spans(1, attributes={"tag": 5}), 0.0) for _ in range(3)] == [S, S, S]
    assert [c.evaluate(spans(1), 0.0) for _ in range(2)] == [S, N]


def test_composite_policy_order() -> None:
    raw = {"max_total_spans_per_second": 100, "policy_order": ["always", "tag"],
           "composite_sub_policy": [TAG_0_100, ALWAYS]}
    c = composite(raw)
    c.evaluate(spans(1, attributes={"tag": 5}), 0.0)
    assert c.last_sub == "always"


def test_composite_with_and_sub_policy() -> None:
    c = composite({"max_total_spans_per_second": 100, "composite_sub_policy": [
        {"name": "both", "type": "and", "and": {"and_sub_policy": [TAG_0_100, ALWAYS]}}]})
    assert c.evaluate(spans(1, attributes={"tag": 5}), 0.0) is S
    assert c.evaluate(spans(1, attributes={"tag": 500}), 0.0) is N


@pytest.mark.parametrize(("allocation", "expected"), [
    # The contrib README example: 50 % and 25 % of 1000; always_sample fills the remaining 250.
    ([{"policy": "a", "percent": 50}, {"policy": "b", "percent": 25}], {"a": 500, "b": 250, "c": 250}),
    # percent 0: an equal share (total / number of sub-policies), as contrib.
    ([{"policy": "a", "percent": 0}], {"a": 333, "b": 667, "c": 667}),
    ([], {"a": 1000, "b": 1000, "c": 1000}),
    ([{"policy": "a", "percent": 60}, {"policy": "b", "percent": 40}], {"a": 600, "b": 400, "c": 0}),
])
def test_composite_allocation(allocation: list[dict[str, Any]], expected: dict[str, int]) -> None:
    subs = [{"name": n, "type": "always_sample"} for n in "abc"]
    config = decode(CompositeConfig, {"max_total_spans_per_second": 1000, "composite_sub_policy": subs,
                                      "rate_allocation": allocation})
    assert allocate(config) == expected
