"""Trace tests on a live trace, cheaply: the pass or fail of each spec without a report, and without a span view
for the spans no selector can pick.

The :mod:`~pipelines.trace_tests.processor` runs a test's specs on every trace its first selector selects a span
of. Most specs pass, and all it then needs is that they passed. A :class:`TestPlan`, made once per definition,
holds each spec's selector as a :class:`FastSelector` and each assertion as a
:func:`~pipelines.trace_tests.assertion.predicate`; a :class:`LiveTrace` answers them:

* A path of one segment with no pseudo-class (``span[name="GET /cart" service.name="payment"]``) picks its
  spans by name from an index of the trace's span names (read from the decoded spans, no view built), skips
  every origin whose resource attributes already decide a filter against it (``service.name``: a resource
  attribute wins over the span's), and makes a :class:`~pipelines.trace_tests.spans.TestSpan` only for the
  spans left, reading only the attributes the filters and assertions name.
* Order does not change whether every assertion holds on every selected span, so no tree is built.
* The same selector in several specs of a trace's tests (the first spec's is also the test's "does it apply")
  is answered once.

Everything else (descendants, ``:first``, the empty selector, a trace with a span id twice) is answered by the
full evaluation (:func:`~pipelines.trace_tests.evaluate.run_spec` over a
:class:`~pipelines.trace_tests.spans.TestTrace`), and so is every spec that fails (the report says which span
and which value) and, with the debug route on, every spec. The plan's answers are the full evaluation's
(tests/pipelines/trace_tests/test_live.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines.trace_tests.assertion import COUNT, Predicate, predicate
from pipelines.trace_tests.definition import Spec
from pipelines.trace_tests.library import LiveTest
from pipelines.trace_tests.selector import Filter, Selector
from pipelines.trace_tests.spans import TestSpan, TestTrace, Value

NAME_KEYS = ("name", "tracetest.span.name")
NO_RESPONSE: Mapping[str, Value] = {}  # a live trace has no trigger response


@dataclass(frozen=True, slots=True)
class FastPath:
    """One path of one segment with no pseudo-class: spans named ``name`` (any span if None) that match
    ``filters`` (the segment's others)."""

    name: str | None
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class FastSelector:
    """A selector whose every path is a :class:`FastPath` (None for one that is not: see the module doc)."""

    selector: Selector
    paths: tuple[FastPath, ...] | None


def fast_selector(selector: Selector) -> FastSelector:
    if not selector.paths:
        return FastSelector(selector, None)  # every span: the full evaluation's
    paths: list[FastPath] = []
    for path in selector.paths:
        if len(path) != 1 or path[0].pseudo:
            return FastSelector(selector, None)
        filters = path[0].filters
        name = next((f.value for f in filters if f.op == "=" and f.key in NAME_KEYS), None)
        paths.append(FastPath(name, tuple(f for f in filters
                                          if not (f.op == "=" and f.key in NAME_KEYS and f.value == name))))
    return FastSelector(selector, tuple(paths))


@dataclass(frozen=True, slots=True)
class SpecPlan:
    spec: Spec
    selector: FastSelector
    checks: tuple[Predicate, ...]
    count_only: bool  # every assertion is about tracetest.selected_spans.count: the spans need no view


@dataclass(frozen=True, slots=True)
class TestPlan:
    """A live test, prepared: its first live selector and its specs (None: a spec not checked live)."""

    test: LiveTest
    first: FastSelector | None
    specs: tuple[SpecPlan | None, ...]

    __test__ = False


def plan_tests(tests: Sequence[LiveTest]) -> dict[str, TestPlan]:
    """A plan per test name; the same selector text in several specs or tests is one :class:`FastSelector`
    (answered once per trace)."""
    selectors: dict[str, FastSelector] = {}

    def fast(s: Selector) -> FastSelector:
        got = selectors.get(s.text)
        if got is None or got.selector != s:
            got = selectors[s.text] = fast_selector(s)
        return got

    plans: dict[str, TestPlan] = {}
    for t in tests:
        specs = tuple(SpecPlan(spec, fast(spec.selector), tuple(predicate(a) for a in spec.assertions),
                               all(a.key == COUNT for a in spec.assertions)) if live
                      else None for spec, live in zip(t.definition.specs, t.live, strict=True))
        plans[t.definition.name] = TestPlan(t, fast(t.selector) if t.selector is not None else None, specs)
    return plans


def may_select(selector: Selector, resources: Sequence[Mapping[str, Value]]) -> bool:
    """False when no span of these origins can be selected: every path's first segment has a filter that the
    origin's resource attributes decide against (a resource attribute is what a span's ``get`` returns), for
    every origin. (Pseudo-classes and later segments only narrow a first segment's matches.)"""
    if not selector.paths:
        return True
    for path in selector.paths:
        filters = path[0].filters
        for res in resources:
            for f in filters:
                if f.key not in NAME_KEYS:
                    actual = res.get(f.key)
                    if actual is not None and not f.holds_for(actual):
                        break
            else:
                return True
    return False


class LiveTrace:
    """A decoded trace for the plans: ``groups`` are (resource attributes, spans) per origin. The full
    :class:`TestTrace` is made when something needs it (:meth:`full`)."""

    __slots__ = ("_full", "_names", "_selected", "_unique", "_views", "groups", "trace_id")

    def __init__(self, trace_id: bytes, groups: Sequence[tuple[Mapping[str, Value], Sequence[Span]]]) -> None:
        self.trace_id = trace_id
        self.groups = groups
        self._full: TestTrace | None = None
        self._unique: bool | None = None
        self._names: list[dict[str, list[int]] | None] = [None] * len(groups)
        self._views: list[list[TestSpan | None] | None] = [None] * len(groups)
        self._selected: dict[int, tuple[FastSelector, list[TestSpan]]] = {}

    def full(self) -> TestTrace:
        full = self._full
        if full is None:
            full = self._full = TestTrace.from_groups(self.trace_id, self.groups)
        return full

    def _fast(self) -> bool:
        """Each span id once (else the full evaluation, which keeps the first copy of a span id)."""
        unique = self._unique
        if unique is None:  # (with the index of span names: one read of the spans)
            ids: set[bytes] = set()
            add = ids.add
            count = 0
            for g, (_, spans) in enumerate(self.groups):
                names: dict[str, list[int]] = {}
                get = names.get
                for i, s in enumerate(spans):
                    add(s.span_id)
                    name = s.name
                    got = get(name)
                    if got is None:
                        names[name] = [i]
                    else:
                        got.append(i)
                self._names[g] = names
                count += len(spans)
            unique = self._unique = len(ids) == count
        return unique

    def applies(self, first: FastSelector) -> bool:
        """Whether the test's first selector selects a span (the full evaluation's ``select`` is not empty)."""
        paths = first.paths
        if paths is None or not self._fast():
            return not first.selector.paths or bool(first.selector.select(self.full()))
        return bool(self._select(first))

    def passes(self, plan: SpecPlan) -> bool | None:
        """Whether every assertion of the spec holds (:func:`~pipelines.trace_tests.evaluate.run_spec`'s
        ``passed``); None when the full evaluation must answer."""
        if plan.selector.paths is None or not self._fast():
            return None
        response = NO_RESPONSE
        if plan.count_only:  # (the same answer on every selected span, and with none)
            n = self._count(plan.selector)
            return all(check(None, n, response) for check in plan.checks)
        selected = self._select(plan.selector)
        n = len(selected)
        for check in plan.checks:
            if not selected:
                if not check(None, 0, response):
                    return False
                continue
            for s in selected:
                if not check(s, n, response):
                    return False
        return True

    def _count(self, fast: FastSelector) -> int:
        """``len(self._select(fast))``, without a view of each span when the origin's resource attributes and
        the span names decide every filter of a one-path selector."""
        got = self._selected.get(id(fast))
        if got is not None and got[0] is fast:
            return len(got[1])
        paths = fast.paths
        assert paths is not None
        if len(paths) != 1:
            return len(self._select(fast))
        path = paths[0]
        n = 0
        for g, (res, spans) in enumerate(self.groups):
            for f in path.filters:
                if f.key in NAME_KEYS:
                    return len(self._select(fast))
                actual = res.get(f.key)
                if actual is None:
                    return len(self._select(fast))
                if not f.holds_for(actual):
                    break
            else:
                if path.name is None:
                    n += len(spans)
                else:
                    names = self._names[g]
                    assert names is not None  # (made by _fast)
                    n += len(names.get(path.name, ()))
        return n

    def _select(self, fast: FastSelector) -> list[TestSpan]:
        key = id(fast)
        got = self._selected.get(key)
        if got is not None and got[0] is fast:  # (the selector itself: an id alone may be a freed one's)
            return got[1]
        paths = fast.paths
        assert paths is not None
        found: list[TestSpan] = []
        for path in paths:
            for g, (res, spans) in enumerate(self.groups):
                span_filters: list[Filter] = []
                for f in path.filters:
                    if f.key not in NAME_KEYS:
                        actual = res.get(f.key)
                        if actual is not None:
                            if f.holds_for(actual):
                                continue  # (every span of the origin has it)
                            break
                    span_filters.append(f)
                else:
                    if path.name is None:
                        picked: Sequence[int] = range(len(spans))
                    else:
                        names = self._names[g]
                        assert names is not None  # (made by _fast)
                        picked = names.get(path.name, ())
                    if not picked:
                        continue
                    views = self._views[g]
                    if views is None:
                        views = self._views[g] = [None] * len(spans)
                    for i in picked:
                        v = views[i]
                        if v is None:
                            v = views[i] = TestSpan(spans[i], res)
                        for f in span_filters:
                            if not f.matches(v):
                                break
                        else:
                            found.append(v)
        if len(paths) > 1 and len(found) > 1:
            found = list({id(s): s for s in found}.values())  # a span on several paths: selected once
        self._selected[key] = (fast, found)
        return found
