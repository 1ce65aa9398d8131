"""Selector semantics, table-tested on the e-commerce trace of Tracetest's selector documentation
(docs/concepts/selectors): each row is a selector and the span numbers the docs show it selecting."""

from __future__ import annotations

import pytest

from pipelines.trace_tests.selector import SelectorError, parse_selector
from tests.pipelines.trace_tests.shop_trace import SHOP, span, view

ALL = list(range(1, 12))


@pytest.mark.parametrize(("selector", "expected"), [
    # empty selector: every span, depth first from the root, children by start time
    ("", ALL),
    ('span[tracetest.span.type="http"]', [1, 2, 4, 6, 7, 9]),
    ('span[tracetest.span.type="http" service.name="cart-api"]', [1, 6]),  # AND
    ('span[tracetest.span.type="http", service.name="cart-api"]', [1, 6]),  # a comma between filters: AND too
    ('span[tracetest.span.type="database"]', [3, 5, 8]),
    ('span[tracetest.span.type="messaging"]', [10, 11]),
    ('span[service.name="product-api"], span[service.name="auth-api"]', [2, 3, 4, 5, 7, 8]),  # OR, trace order
    ('span[service.name contains "api"]', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),  # contains
    ('span[db.statement contains "users"]', [5, 8]),
    ('span[name="get user can access"]', [4, 7]),  # name: the span name
    ('span[kind="client"]', [3, 5, 8]),
    ('span[kind="producer"]', [10]),
    ('span[http.status_code=200]', [4]),  # a number: compared as text
    ('span[http.status_code="403"]', [7]),
    ('span[service.name="nobody"]', []),
    ('span[missing.attr="x"]', []),
    # pseudo-classes pick among the segment's matches in trace order
    ('span[tracetest.span.type="http"]:first', [1]),
    ('span[tracetest.span.type="http"]:last', [9]),
    ('span[tracetest.span.type="http"]:nth_child(3)', [4]),  # the docs' example: span 4
    ('span[tracetest.span.type="http"]:nth_child(6)', [9]),
    ('span[tracetest.span.type="http"]:nth_child(7)', []),  # out of range: nothing
    ('span[tracetest.span.type="http"]:nth_child(0)', []),
    # descendants (any depth, not only children)
    ('span[service.name="auth-api" tracetest.span.type="http"]', [4, 7]),
    ('span[service.name="cart-api" name="purchase products"] span[service.name="auth-api" tracetest.span.type="http"]',
     [7]),  # the docs' parent-child example
    ('span[name="close order"] span[tracetest.span.type="database"]', [3, 5, 8]),  # grandchildren too
    ('span[name="is product available"] span[tracetest.span.type="database"]', [3, 5]),
    ('span[name="notify user"] span[name="close order"]', []),  # ancestors are not descendants
    ('span[tracetest.span.type="http"] span[tracetest.span.type="database"]:last', [8]),
    ('span[tracetest.span.type="http"]:nth_child(2) span[tracetest.span.type="database"]', [3, 5]),
    ('span[service.name="notification-api"] span[service.name="external-service"]', [11]),
])
def test_selects(selector: str, expected: list[int]) -> None:
    chosen = parse_selector(selector).select(view())
    assert [int.from_bytes(s.span_id, "big") for s in chosen] == expected


@pytest.mark.parametrize(("selector", "needle"), [
    ("span", "must be followed by '['"),
    ("span[]", "has no filter"),
    ('span[name="x"', "not closed"),
    ('span[name^="x"]', "unexpected '^'"),
    ('span[name!="x"]', "unexpected '!'"),
    ('span[name="x"]:nth-child(2)', "not supported"),
    ('span[name="x"]:odd', "not supported"),
    ('span[name=x]', "must be a quoted string"),
    ('span[name="x"] > span[name="y"]', "unexpected '>'"),
    ('span[name="x"],', "ends with ','"),
    ('div[name="x"]', "expected 'span[...]'"),
])
def test_refused(selector: str, needle: str) -> None:
    with pytest.raises(SelectorError, match=r"(?s).*") as info:
        parse_selector(selector)
    assert needle in str(info.value)
    assert selector in str(info.value)


def test_span_type_follows_semantic_conventions() -> None:
    spans = [
        (span(1, 0, "r", 0, 1, **{"rpc.system": "grpc"}), "a"),
        (span(2, 1, "g", 0, 1, **{"custom": "x"}), "a"),
        (span(3, 1, "f", 0, 1, **{"faas.trigger": "http"}), "a"),
        (span(4, 1, "h", 0, 1, **{"http.request.method": "GET", "db.system": "redis"}), "a"),  # http first
    ]
    types = [s.attrs["tracetest.span.type"] for s in view(spans).ordered]
    assert types == ["rpc", "general", "faas", "http"]


def test_orphans_cycles_and_depth() -> None:
    deep = [(span(1, 0, "root", 0, 1), "a")] + [(span(n, n - 1, f"s{n}", n / 1000, 1), "a")
                                                  for n in range(2, 100_001)]
    tt = view(deep)
    assert len(tt.ordered) == 100_000
    sel = parse_selector('span[name="root"] span[name="s100000"]')
    assert [s.name for s in sel.select(tt)] == ["s100000"]
    cyclic = [(span(1, 2, "a", 0, 1), "x"), (span(2, 1, "b", 1, 1), "x"), (span(3, 9, "orphan", 2, 1), "x")]
    names = [s.name for s in view(cyclic).ordered]
    assert sorted(names) == ["a", "b", "orphan"]


def test_all_shop_spans_present() -> None:
    assert len(view().ordered) == len(SHOP)
