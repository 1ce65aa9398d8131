"""Assertion semantics, table-tested on hand-built spans: comparators, value types, durations with units,
the tracetest.* pseudo-attributes, and what is refused."""

from __future__ import annotations

import pytest

from pipelines.trace_tests.assertion import AssertionSyntaxError, check_all, parse_assertion
from pipelines.trace_tests.selector import parse_selector
from tests.pipelines.trace_tests.shop_trace import MS, T0, span, view

# One span: 12.5 ms long, with attributes of every scalar type.
ONE = [(span(1, 0, "POST /checkout", 0, 12.5, **{
    "http.method": "POST", "http.status_code": 200, "ratio": 0.25, "cache.hit": True,
    "db.statement": "SELECT * FROM orders", "timing": "3ms"}), "frontend")]
RESPONSE = {"tracetest.response.status": 201, "tracetest.response.body": '{"id": 7}'}


def outcome(text: str, selector: str = "") -> list[bool]:
    tt = view(ONE, RESPONSE)  # type: ignore[arg-type]
    spans = parse_selector(selector).select(tt)
    return [c.passed for c in check_all(parse_assertion(text), spans, tt.response)]


@pytest.mark.parametrize(("assertion", "passes"), [
    ("attr:http.status_code = 200", True),
    ("attr:http.status_code = 201", False),
    ("attr:http.status_code != 500", True),
    ("attr:http.status_code < 300", True),
    ("attr:http.status_code <= 200", True),
    ("attr:http.status_code > 200", False),
    ("attr:http.status_code >= 200", True),
    ("attr:http.status_code = 200.0", True),  # numbers compare as numbers
    ('attr:http.status_code = "200"', True),  # a string compares as text
    ('attr:http.method = "POST"', True),
    ("attr:http.method = 'POST'", True),
    ('attr:http.method != "GET"', True),
    ('attr:http.method = "post"', False),
    ('attr:db.statement contains "orders"', True),
    ('attr:db.statement contains "users"', False),
    ('attr:db.statement not-contains "users"', True),
    ('attr:db.statement not-contains "SELECT"', False),
    ("attr:ratio < 0.5", True),
    ("attr:ratio = 0.25", True),
    ("attr:cache.hit = true", True),
    ("attr:cache.hit = false", False),
    ('attr:http.method < 3', False),  # not a number: fails (with an error shown)
    # durations: tracetest.span.duration is in nanoseconds; every unit
    ("attr:tracetest.span.duration < 13ms", True),
    ("attr:tracetest.span.duration < 12ms", False),
    ("attr:tracetest.span.duration > 12ms", True),
    ("attr:tracetest.span.duration = 12500us", True),
    ("attr:tracetest.span.duration = 12500000ns", True),
    ("attr:tracetest.span.duration < 1s", True),
    ("attr:tracetest.span.duration < 0.01s", False),
    ("attr:tracetest.span.duration < 1m", True),
    ("attr:tracetest.span.duration < 1h", True),
    ("attr:tracetest.span.duration = 12500000", True),  # a bare number: nanoseconds
    ("attr:timing < 4ms", True),  # a text attribute holding a duration
    ("attr:timing > 3001us", False),
    # pseudo-attributes
    ('attr:tracetest.span.name = "POST /checkout"', True),
    ('attr:tracetest.span.type = "http"', True),
    ('attr:tracetest.span.kind = "server"', True),
    (f"attr:tracetest.span.start_time = {T0}", True),
    (f"attr:tracetest.span.end_time = {T0 + 12 * MS + MS // 2}", True),
    ("attr:tracetest.selected_spans.count = 1", True),
    ("attr:tracetest.selected_spans.count > 1", False),
    ("attr:tracetest.response.status = 201", True),
    ('attr:tracetest.response.body contains "\\"id\\": 7"', True),
    ("attr:missing.attr = 1", False),  # a missing attribute fails
])
def test_assertion_on_one_span(assertion: str, passes: bool) -> None:
    assert outcome(assertion, 'span[name="POST /checkout"]') == [passes]


@pytest.mark.parametrize(("assertion", "passes"), [
    ("attr:tracetest.selected_spans.count = 0", True),  # asserting absence
    ("attr:tracetest.selected_spans.count > 0", False),
    ("attr:http.status_code = 200", False),  # an attribute of no span: fails
    ("attr:tracetest.response.status = 201", True),
])
def test_assertion_with_nothing_selected(assertion: str, passes: bool) -> None:
    assert outcome(assertion, 'span[name="nothing"]') == [passes]


def test_every_selected_span_is_checked() -> None:
    tt = view()
    spans = parse_selector('span[tracetest.span.type="http"]').select(tt)
    checks = check_all(parse_assertion("attr:tracetest.span.duration < 40ms"), spans, {})
    assert [c.passed for c in checks] == [False, True, True, False, True, True]
    assert checks[0].actual == "100ms" and checks[0].span is spans[0]
    count = check_all(parse_assertion("attr:tracetest.selected_spans.count = 6"), spans, {})
    assert all(c.passed for c in count) and len(count) == 6


def test_env_is_not_expression() -> None:
    with pytest.raises(AssertionSyntaxError, match="other than"):
        parse_assertion("attr:http.url = ${attr:http.host}")


@pytest.mark.parametrize(("assertion", "needle"), [
    ("attr:http.response.body | json_path '$.id' = \"143\"", "filters"),
    ('attr:http.status_code exists', "'exists'"),
    ('attr:http.status_code not-exists', "'exists'"),
    ('attr:http.status_code =~ "2.."', "not a number, a quoted string"),
    ('attr:http.method < "POST"', "compares numbers and durations"),
    ('"${attr:http.method}" = "POST"', "only assertions of the form"),
    ('env:X = 1', "only assertions of the form"),
    ('attr:tracetest.span.status = 1', "not a supported tracetest attribute"),
    ('attr:http.status_code = 200 + 1', "arithmetic"),
    ('attr:http.status_code =', "has no value"),
    ('attr:tracetest.span.duration < 5 parsecs', "not a number"),
    ('attr:http.url = "${env:X}/a"', "interpolation"),
])
def test_refused(assertion: str, needle: str) -> None:
    with pytest.raises(AssertionSyntaxError) as info:
        parse_assertion(assertion)
    assert needle in str(info.value)
