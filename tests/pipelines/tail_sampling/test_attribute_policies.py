"""string_attribute, numeric_attribute, boolean_attribute: the cases of contrib's tag filter tests."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.tail_sampling.policies import Decision
from pipelines.tail_sampling.policies.boolean_attribute import BooleanAttribute, BooleanAttributeConfig
from pipelines.tail_sampling.policies.numeric_attribute import NumericAttribute, NumericAttributeConfig
from pipelines.tail_sampling.policies.string_attribute import RegexMatcher, StringAttribute, StringAttributeConfig
from tests.pipelines.tail_sampling.support import cfg, span, trace, trace_groups

S, N = Decision.SAMPLED, Decision.NOT_SAMPLED
IS, INS = Decision.INVERTED_SAMPLED, Decision.INVERTED_NOT_SAMPLED

STRING_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], Decision]] = [
    # (case, config, resource attributes, span attributes, decision)
    ("nonmatching key", {"values": ["value"]}, {}, {"non_matching": "value"}, N),
    ("nonmatching value", {"values": ["value"]}, {}, {"example": "other"}, N),
    ("matching span attribute", {"values": ["value"]}, {}, {"example": "value"}, S),
    ("matching resource attribute", {"values": ["value"]}, {"example": "value"}, {}, S),
    ("one of several values", {"values": ["a", "value"]}, {}, {"example": "value"}, S),
    ("empty span value never matches", {"values": ["", "x"]}, {}, {"example": ""}, N),
    ("non-string value reads as empty", {"values": ["1"]}, {}, {"example": 1}, N),
    ("no attributes at all", {"values": ["value"]}, {}, {}, N),
    ("regex match", {"values": ["v[0-9]+"], "enabled_regex_matching": True}, {}, {"example": "v123"}, S),
    ("regex searches anywhere", {"values": ["alu"], "enabled_regex_matching": True}, {}, {"example": "value"}, S),
    ("regex anchored by user", {"values": ["^alu"], "enabled_regex_matching": True}, {}, {"example": "value"}, N),
    ("regex on resource", {"values": ["ser.*"], "enabled_regex_matching": True}, {"example": "service"}, {}, S),
    ("regex no match", {"values": ["^x$"], "enabled_regex_matching": True}, {}, {"example": "value"}, N),
    ("invert: match", {"values": ["value"], "invert_match": True}, {}, {"example": "value"}, INS),
    ("invert: resource match", {"values": ["value"], "invert_match": True}, {"example": "value"}, {}, INS),
    ("invert: no match", {"values": ["value"], "invert_match": True}, {}, {"example": "other"}, IS),
    ("invert: key missing", {"values": ["value"], "invert_match": True}, {}, {"other": "value"}, IS),
    ("invert: regex match", {"values": ["val.*"], "enabled_regex_matching": True, "invert_match": True},
     {}, {"example": "value"}, INS),
    ("invert: regex no match", {"values": ["^x"], "enabled_regex_matching": True, "invert_match": True},
     {}, {"example": "value"}, IS),
    ("empty values match nothing", {"values": []}, {}, {"example": "value"}, N),
    ("empty regex values match nothing", {"values": [], "enabled_regex_matching": True}, {}, {"example": "v"}, N),
    ("invert: empty values", {"values": [], "invert_match": True}, {}, {"example": "value"}, IS),
]


@pytest.mark.parametrize(("config", "resource", "span_attrs", "expected"),
                         [c[1:] for c in STRING_CASES], ids=[c[0] for c in STRING_CASES])
def test_string_attribute(config: dict[str, Any], resource: dict[str, Any], span_attrs: dict[str, Any],
                          expected: Decision) -> None:
    policy = StringAttribute("p", cfg(StringAttributeConfig, key="example", **config))
    assert policy.evaluate(trace(span(attributes=span_attrs), resource=resource), 0.0) is expected


def test_string_attribute_empty_trace() -> None:
    policy = StringAttribute("p", cfg(StringAttributeConfig, key="example", values=["v"]))
    assert policy.evaluate(trace(), 0.0) is N
    inverted = StringAttribute("p", cfg(StringAttributeConfig, key="example", values=["v"], invert_match=True))
    assert inverted.evaluate(trace(), 0.0) is IS


def test_string_attribute_second_resource_group_matches() -> None:
    policy = StringAttribute("p", cfg(StringAttributeConfig, key="service.name", values=["b"]))
    t = trace_groups([({"service.name": "a"}, [span()]), ({"service.name": "b"}, [span()])])
    assert policy.evaluate(t, 0.0) is S


def test_regex_cache_is_bounded_and_consistent() -> None:
    matcher = RegexMatcher(("^v", "x$"), 3)
    for i in range(10):
        assert matcher(f"v{i}") is True
        assert matcher(f"a{i}") is False
    assert len(matcher) == 3
    assert matcher("ax") is True and matcher("ax") is True  # cached result is the same
    assert RegexMatcher(("a",), 0).size == 128  # contrib's default when cache_max_size is 0


NUMERIC_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], Decision]] = [
    ("nonmatching key", {"min_value": 10, "max_value": 20}, {}, {"other": 15}, N),
    ("at lower limit (inclusive)", {"min_value": 10, "max_value": 20}, {}, {"example": 10}, S),
    ("at upper limit (inclusive)", {"min_value": 10, "max_value": 20}, {}, {"example": 20}, S),
    ("below lower limit", {"min_value": 10, "max_value": 20}, {}, {"example": 9}, N),
    ("above upper limit", {"min_value": 10, "max_value": 20}, {}, {"example": 21}, N),
    ("resource attribute in range", {"min_value": 10, "max_value": 20}, {"example": 15}, {}, S),
    ("only min: large value", {"min_value": 10}, {}, {"example": 2**62}, S),
    ("only min: below", {"min_value": 10}, {}, {"example": 9}, N),
    ("only max: very negative", {"max_value": 10}, {}, {"example": -(2**62)}, S),
    ("only max: above", {"max_value": 10}, {}, {"example": 11}, N),
    ("string value reads as 0", {"min_value": -1, "max_value": 1}, {}, {"example": "5"}, S),
    ("invert: in range", {"min_value": 10, "max_value": 20, "invert_match": True}, {}, {"example": 15}, INS),
    ("invert: out of range", {"min_value": 10, "max_value": 20, "invert_match": True}, {}, {"example": 25}, IS),
    ("invert: missing key", {"min_value": 10, "max_value": 20, "invert_match": True}, {}, {}, IS),
    ("invert: resource in range", {"min_value": 10, "max_value": 20, "invert_match": True}, {"example": 12}, {},
     INS),
]


@pytest.mark.parametrize(("config", "resource", "span_attrs", "expected"),
                         [c[1:] for c in NUMERIC_CASES], ids=[c[0] for c in NUMERIC_CASES])
def test_numeric_attribute(config: dict[str, Any], resource: dict[str, Any], span_attrs: dict[str, Any],
                           expected: Decision) -> None:
    policy = NumericAttribute("p", cfg(NumericAttributeConfig, key="example", **config))
    assert policy.evaluate(trace(span(attributes=span_attrs), resource=resource), 0.0) is expected


def test_numeric_attribute_empty_trace() -> None:
    policy = NumericAttribute("p", cfg(NumericAttributeConfig, key="example", min_value=1))
    assert policy.evaluate(trace(), 0.0) is N


BOOLEAN_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], Decision]] = [
    ("nonmatching key", {"value": True}, {}, {"other": True}, N),
    ("span true", {"value": True}, {}, {"example": True}, S),
    ("span false, want true", {"value": True}, {}, {"example": False}, N),
    ("span false, want false", {"value": False}, {}, {"example": False}, S),
    ("resource true", {"value": True}, {"example": True}, {}, S),
    ("string 'true' is not a bool", {"value": True}, {}, {"example": "true"}, N),
    ("invert: match", {"value": True, "invert_match": True}, {}, {"example": True}, INS),
    ("invert: no match", {"value": True, "invert_match": True}, {}, {"example": False}, IS),
    ("invert: missing", {"value": True, "invert_match": True}, {}, {}, IS),
]


@pytest.mark.parametrize(("config", "resource", "span_attrs", "expected"),
                         [c[1:] for c in BOOLEAN_CASES], ids=[c[0] for c in BOOLEAN_CASES])
def test_boolean_attribute(config: dict[str, Any], resource: dict[str, Any], span_attrs: dict[str, Any],
                           expected: Decision) -> None:
    policy = BooleanAttribute("p", cfg(BooleanAttributeConfig, key="example", **config))
    assert policy.evaluate(trace(span(attributes=span_attrs), resource=resource), 0.0) is expected
