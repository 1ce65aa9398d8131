"""Tracetest's assertions: ``attr:NAME COMPARATOR VALUE``, checked on every selected span.

* Comparators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``contains``, ``not-contains``.
* Values: numbers (``200``, ``0.5``), quoted strings (``"POST"``, ``'POST'``), durations with a unit (``ns``,
  ``us``, ``ms``, ``s``, ``m``, ``h``: ``500ms``), ``true`` / ``false``. ``${env:NAME}`` is substituted when the
  definition is read.
* A number or duration compares numerically (a duration attribute such as ``tracetest.span.duration`` is in
  nanoseconds, and a text attribute holding a duration such as ``"12ms"`` is read as one); a string compares
  as text, with ``=``, ``!=``, ``contains`` and ``not-contains`` only.
* ``tracetest.selected_spans.count`` is the number of spans the selector picked and ``tracetest.response.status``
  / ``.body`` / ``.headers`` the trigger's response; with no span selected an assertion is checked once,
  and fails unless it is about those.

Tracetest's expression language has more (``| json_path``, ``${attr:...}``, arithmetic, ``exists``); an
assertion using it is refused with :class:`AssertionSyntaxError`, never skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pipelines.trace_tests.selector import text_of
from pipelines.trace_tests.spans import TestSpan, Value

COMPARATORS = ("=", "!=", "<", "<=", ">", ">=", "contains", "not-contains")
ORDERING = ("<", "<=", ">", ">=")
UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}
COUNT = "tracetest.selected_spans.count"
RESPONSE = ("tracetest.response.status", "tracetest.response.body", "tracetest.response.headers")
SPAN_PSEUDO = ("tracetest.span.name", "tracetest.span.kind", "tracetest.span.type", "tracetest.span.duration",
               "tracetest.span.start_time", "tracetest.span.end_time", "tracetest.span.status_code",
               "tracetest.span.status_description", "tracetest.span.parent_id")
DURATION_ATTRS = ("tracetest.span.duration",)

_ASSERTION = re.compile(r"""^\s*attr:(?P<key>[^\s=!<>]+)\s*
    (?P<cmp>not-contains|contains|!=|<=|>=|=|<|>)\s*(?P<value>.*?)\s*$""", re.VERBOSE | re.DOTALL)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$")
_DURATION = re.compile(r"^(?P<n>-?\d+(?:\.\d+)?)\s*(?P<unit>ns|us|µs|ms|s|m|h)$")
_QUOTED = re.compile(r"""^(?:"(?P<d>(?:[^"\\]|\\.)*)"|'(?P<s>(?:[^'\\]|\\.)*)')$""", re.DOTALL)


class AssertionSyntaxError(ValueError):
    """An assertion that cannot be parsed, or uses a feature that is not supported; the message says which."""


@dataclass(frozen=True, slots=True)
class Expected:
    kind: str  # "number", "duration", "string", "bool"
    text: str  # the value as written (unquoted for strings)
    number: float = 0.0  # number, or nanoseconds of a duration

    def show(self) -> str:
        return f'"{self.text}"' if self.kind == "string" else self.text


def parse_duration_ns(text: str) -> float | None:
    m = _DURATION.match(text.strip())
    if m is None:
        return None
    return float(m.group("n")) * UNITS_NS[m.group("unit")]


def format_duration(ns: float) -> str:
    for unit, size in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= size:
            return f"{ns / size:.4g}{unit}"
    return f"{ns:.0f}ns"


def parse_value(text: str) -> Expected:
    text = text.strip()
    if not text:
        raise AssertionSyntaxError("has no value after the comparator")
    if _NUMBER.match(text):
        return Expected("number", text, float(text))
    ns = parse_duration_ns(text)
    if ns is not None:
        return Expected("duration", text, ns)
    m = _QUOTED.match(text)
    if m is not None:
        raw = m.group("d") if m.group("d") is not None else m.group("s")
        if "${" in raw:
            raise AssertionSyntaxError(f"value {text}: interpolation ${{...}} inside a string is not supported "
                                       "(only ${env:NAME}, substituted when the file is read)")
        return Expected("string", re.sub(r"\\(.)", r"\1", raw))
    if text in ("true", "false"):
        return Expected("bool", text)
    if "|" in text:
        raise AssertionSyntaxError(f"value {text!r}: filters ('| json_path', '| regex' ...) are not supported")
    if "${" in text:
        raise AssertionSyntaxError(f"value {text!r}: ${{...}} expressions other than ${{env:NAME}} are not "
                                   "supported")
    if re.search(r"\s[-+*/]\s", text):
        raise AssertionSyntaxError(f"value {text!r}: arithmetic is not supported")
    raise AssertionSyntaxError(f"value {text!r} is not a number, a quoted string, a duration (500ms) or "
                               "true/false")


@dataclass(frozen=True, slots=True)
class SpanCheck:
    """One assertion on one span (``span`` None: checked with no span selected)."""

    span: TestSpan | None
    actual: str  # the observed value as shown in reports ("" with an error)
    passed: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class Assertion:
    text: str
    key: str
    comparator: str
    expected: Expected

    def check(self, span: TestSpan | None, selected: int, response: Mapping[str, Value]) -> SpanCheck:
        key = self.key
        actual: Value | None
        if key == COUNT:
            actual = selected
        elif key in RESPONSE:
            actual = response.get(key)
            if actual is None:
                return SpanCheck(span, "", False, f"{key}: no trigger response (a live trace has none)")
        elif span is None:
            return SpanCheck(None, "", False, "no span selected")
        else:
            actual = span.get(key)
            if actual is None:
                return SpanCheck(span, "", False, f"the span has no attribute {key}")
        return self._compare(span, actual) if actual is not None else SpanCheck(span, "", False, "no value")

    def _compare(self, span: TestSpan | None, actual: Value) -> SpanCheck:
        exp, cmp = self.expected, self.comparator
        if exp.kind in ("number", "duration") and cmp not in ("contains", "not-contains"):
            number = _number(actual, duration=exp.kind == "duration")
            shown = _show(self.key, actual)
            if number is None:
                what = "duration" if exp.kind == "duration" else "number"
                return SpanCheck(span, shown, False, f"{shown} is not a {what}")
            return SpanCheck(span, shown, _ordered(cmp, number, exp.number))
        text = text_of(actual)
        want = exp.text
        if cmp == "=":
            ok = text == want
        elif cmp == "!=":
            ok = text != want
        elif cmp == "contains":
            ok = want in text
        else:
            ok = want not in text
        return SpanCheck(span, _show(self.key, actual), ok)

    def __str__(self) -> str:
        return self.text


Predicate = Callable[[TestSpan | None, int, Mapping[str, Value]], bool]


def predicate(a: Assertion) -> Predicate:
    """``a.check(span, selected, response).passed`` as one function, made once per assertion: the key's kind,
    the comparison and the expected value are chosen here, not on every span; no report is built."""
    key, cmp, exp = a.key, a.comparator, a.expected
    want_text, want = exp.text, exp.number
    duration = exp.kind == "duration"
    if exp.kind in ("number", "duration") and cmp not in ("contains", "not-contains"):
        compare = _ORDERED[cmp]

        def holds(actual: Value) -> bool:
            if type(actual) is int or type(actual) is float:
                return compare(float(actual), want)
            number = _number(actual, duration=duration)
            return number is not None and compare(number, want)
    elif cmp == "=":
        def holds(actual: Value) -> bool:
            return (actual if type(actual) is str else text_of(actual)) == want_text
    elif cmp == "!=":
        def holds(actual: Value) -> bool:
            return (actual if type(actual) is str else text_of(actual)) != want_text
    elif cmp == "contains":
        def holds(actual: Value) -> bool:
            return want_text in (actual if type(actual) is str else text_of(actual))
    else:
        def holds(actual: Value) -> bool:
            return want_text not in (actual if type(actual) is str else text_of(actual))

    if key == COUNT:
        def check(span: TestSpan | None, selected: int, response: Mapping[str, Value]) -> bool:
            return holds(selected)
    elif key in RESPONSE:
        def check(span: TestSpan | None, selected: int, response: Mapping[str, Value]) -> bool:
            actual = response.get(key)
            return actual is not None and holds(actual)
    else:
        def check(span: TestSpan | None, selected: int, response: Mapping[str, Value]) -> bool:
            if span is None:
                return False
            actual = span.get(key)
            return actual is not None and holds(actual)
    return check


_ORDERED: dict[str, Callable[[float, float], bool]] = {
    "=": float.__eq__, "!=": float.__ne__, "<": float.__lt__, "<=": float.__le__, ">": float.__gt__,
    ">=": float.__ge__}


def _show(key: str, actual: Value) -> str:
    if key in DURATION_ATTRS and isinstance(actual, int | float) and not isinstance(actual, bool):
        return format_duration(actual)
    return text_of(actual) if not isinstance(actual, str) else f'"{actual}"'


def _number(actual: Value, *, duration: bool) -> float | None:
    if isinstance(actual, bool):
        return None
    if isinstance(actual, int | float):
        return float(actual)
    text = actual.strip()
    if _NUMBER.match(text):
        return float(text)
    if duration:
        return parse_duration_ns(text)
    return None


def _ordered(cmp: str, a: float, b: float) -> bool:
    if cmp == "=":
        return a == b
    if cmp == "!=":
        return a != b
    if cmp == "<":
        return a < b
    if cmp == "<=":
        return a <= b
    if cmp == ">":
        return a > b
    return a >= b


def parse_assertion(text: str) -> Assertion:
    """Parse ``attr:NAME COMPARATOR VALUE``; raises :class:`AssertionSyntaxError` saying what is unsupported."""
    if not isinstance(text, str):
        raise AssertionSyntaxError(f"an assertion is text, not {type(text).__name__}")
    src = text.strip()
    if not src.startswith("attr:"):
        raise AssertionSyntaxError(f"{src!r}: only assertions of the form 'attr:NAME COMPARATOR VALUE' are "
                                   "supported (no expressions or literals on the left)")
    if re.match(r"^attr:\S+\s+(exists|not-exists)\b", src):
        raise AssertionSyntaxError(f"{src!r}: the comparators 'exists' and 'not-exists' are not supported "
                                   f"(supported: {', '.join(COMPARATORS)})")
    if re.match(r"^attr:\S+\s*\|", src):
        raise AssertionSyntaxError(f"{src!r}: filters ('| json_path', '| regex' ...) are not supported")
    m = _ASSERTION.match(src)
    if m is None:
        raise AssertionSyntaxError(f"{src!r}: expected 'attr:NAME COMPARATOR VALUE' with a comparator of "
                                   f"{', '.join(COMPARATORS)}")
    key, cmp = m.group("key"), m.group("cmp")
    if key.startswith("tracetest.") and key not in (COUNT, *RESPONSE, *SPAN_PSEUDO):
        raise AssertionSyntaxError(f"{src!r}: {key} is not a supported tracetest attribute (supported: "
                                   f"{', '.join((*SPAN_PSEUDO, COUNT, *RESPONSE))})")
    try:
        expected = parse_value(m.group("value"))
    except AssertionSyntaxError as e:
        raise AssertionSyntaxError(f"{src!r}: {e}") from None
    if expected.kind in ("string", "bool") and cmp in ORDERING:
        raise AssertionSyntaxError(f"{src!r}: {cmp} compares numbers and durations, not {expected.kind}s")
    return Assertion(src, key, cmp, expected)


def check_all(assertion: Assertion, spans: Sequence[TestSpan], response: Mapping[str, Value]) -> list[SpanCheck]:
    """The assertion on each selected span (once with no span when none is selected)."""
    n = len(spans)
    if not spans:
        return [assertion.check(None, 0, response)]
    return [assertion.check(s, n, response) for s in spans]
