"""Matchers (all four operators, quoting, anchored regexes) and the route tree (depth-first, first match
unless continue, inheritance)."""

from __future__ import annotations

from typing import Any

import pytest

from collector.config import decode
from pipelines.alert_routing import Config
from pipelines.alert_routing.matchers import MatcherError, parse_matcher
from pipelines.alert_routing.route import Route, build_routes

LABELS = {"team": "payments", "service": "payment-db", "span_name": "SELECT", "signal": "checkout",
          "severity": "page"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('team="payments"', True),
        ("team=payments", True),
        ('team = "payments"', True),
        ('team="pay"', False),
        ('team!="payments"', False),
        ('team!="growth"', True),
        ('service=~"payment.*"', True),
        ('service=~"payment"', False),  # anchored: must match the whole value
        ('service=~"db"', False),
        ('service=~".*db"', True),
        ('service!~"payment.*"', False),
        ('service!~"cart|email"', True),
        ('owner=""', True),  # a missing label is the empty string
        ('owner!=""', False),
        ('span_name=~"(?i)select"', True),
        (r'service="payment\u002ddb"', True),  # quoted values are unescaped
    ],
)
def test_matcher(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is expected


@pytest.mark.parametrize("text", ["team", "team==x", "=x", 'team="x', 'team=x"', "9team=x", 'team=~"("'])
def test_bad_matchers(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matcher(text)


def tree(route: dict[str, Any], **top: Any) -> Route:
    names = {"root", "a", "b", "c", "d", "e"}
    cfg = decode(Config, {"route": route, "receivers": [{"name": n, "webhook": {"url": "http://x"}} for n in names],
                          **top})
    return build_routes(cfg)


def receivers(root: Route, **labels: str) -> list[str]:
    return [r.receiver for r in root.match({**LABELS, **labels})]


def test_first_matching_child_wins_depth_first() -> None:
    root = tree({"receiver": "root", "routes": [
        {"matchers": ['team="payments"'], "receiver": "a", "routes": [
            {"matchers": ['service=~".*-db"'], "receiver": "b"},
            {"matchers": ['service!~".*-db"'], "receiver": "c"},
        ]},
        {"matchers": ['team="payments"'], "receiver": "d"},  # never reached: the first child took it
    ]})
    assert receivers(root) == ["b"]
    assert receivers(root, service="payment") == ["c"]
    assert receivers(root, team="growth") == ["root"]  # no child matches: the parent takes it


def test_parent_takes_alert_when_no_grandchild_matches() -> None:
    root = tree({"receiver": "root", "routes": [
        {"matchers": ['team="payments"'], "receiver": "a", "routes": [{"matchers": ['service="x"'], "receiver": "b"}]},
    ]})
    assert receivers(root) == ["a"]


def test_continue_lets_later_siblings_match() -> None:
    root = tree({"receiver": "root", "routes": [
        {"matchers": ['severity="page"'], "receiver": "a", "continue": True},
        {"matchers": ['team="payments"'], "receiver": "b"},
        {"matchers": ['team=~"pay.*"'], "receiver": "c"},
    ]})
    assert receivers(root) == ["a", "b"]
    assert receivers(root, team="growth") == ["a"]
    assert receivers(root, severity="ticket", team="growth") == ["root"]


def test_children_inherit_unset_settings() -> None:
    root = tree({"receiver": "root", "group_wait": "1s", "routes": [
        {"matchers": ['team="payments"'], "group_by": ["team"], "repeat_interval": "1h", "routes": [
            {"matchers": ['service="payment-db"'], "receiver": "b", "group_interval": "2m"},
        ]},
    ]}, group_interval="5m", repeat_interval="4h", group_wait="30s")
    assert root.timing.group_wait == 1.0 and root.timing.group_interval == 300.0
    mid = root.routes[0]
    assert mid.receiver == "root" and mid.group_by == ("team",)
    assert (mid.timing.group_wait, mid.timing.group_interval, mid.timing.repeat_interval) == (1.0, 300.0, 3600.0)
    leaf = mid.routes[0]
    assert leaf.receiver == "b" and leaf.group_by == ("team",)
    assert (leaf.timing.group_wait, leaf.timing.group_interval, leaf.timing.repeat_interval) == (1.0, 120.0, 3600.0)
    assert root.group_by == ("service", "span_name", "team")


def test_route_keys_are_unique() -> None:
    root = tree({"receiver": "root", "routes": [
        {"matchers": ['team="a"'], "receiver": "a"},
        {"matchers": ['team="a"'], "receiver": "b"},
        {"receiver": "c"},
    ]})
    keys = [r.key for r in root.walk()]
    assert keys == ['{}', '{}/{team="a"}', '{}/{team="a"}/1', "{}/{}"]
