"""Running a test's specs on one trace, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.trace_tests.assertion import Assertion, SpanCheck, check_all
from pipelines.trace_tests.definition import Spec, TestDefinition
from pipelines.trace_tests.spans import TestSpan, TestTrace


@dataclass(frozen=True, slots=True)
class AssertionResult:
    assertion: Assertion
    checks: tuple[SpanCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass(frozen=True, slots=True)
class SpecResult:
    spec: Spec
    selected: tuple[TestSpan, ...]
    assertions: tuple[AssertionResult, ...]
    selected_count: int = -1  # when ``selected`` holds only some of them (a result read back from JSON)

    @property
    def count(self) -> int:
        return self.selected_count if self.selected_count >= 0 else len(self.selected)

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.assertions)


@dataclass(frozen=True, slots=True)
class TestResult:
    test: TestDefinition
    trace_id: bytes
    specs: tuple[SpecResult, ...]
    error: str = ""  # the run failed before the specs (trigger failed, no trace)

    __test__ = False

    @property
    def passed(self) -> bool:
        return not self.error and all(s.passed for s in self.specs)

    @property
    def failed_specs(self) -> list[SpecResult]:
        return [s for s in self.specs if not s.passed]


def run_spec(spec: Spec, trace: TestTrace) -> SpecResult:
    selected = spec.selector.select(trace)
    results = tuple(AssertionResult(a, tuple(check_all(a, selected, trace.response))) for a in spec.assertions)
    return SpecResult(spec, tuple(selected), results)


def run_test(test: TestDefinition, trace: TestTrace) -> TestResult:
    """Every spec of ``test`` on ``trace``."""
    return TestResult(test, trace.trace_id, tuple(run_spec(s, trace) for s in test.specs))


def applies_to(test: TestDefinition, trace: TestTrace) -> bool:
    """A live trace is one the test is about when its first spec's selector selects a span (an empty first
    selector: every trace)."""
    sel = test.matches_first()
    return not sel.paths or bool(sel.select(trace))
