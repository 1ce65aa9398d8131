"""The definitions a ``trace_tests`` processor runs: read from a directory (or one file), checked for changes,
and prepared for live traces (which tests may apply to a trace, cheaply, before any span is decoded).

**Which traces a test is about.** A live trace is one of a test's traces when the selector of the test's first
spec that can be checked live (see below) selects a span of it; a test with none is never run live. Most such
selectors name a span (``span[name="POST /checkout" ...]``): the processor indexes the tests by those names, and
a trace whose wire bytes hold none of those names as a span encodes them is not tested further (nothing of it
is decoded, see :mod:`pipelines.trace_tests.processor`). A test whose selector has a path whose first segment
requires no name (``span[http.route="/checkout"]``, ``span[name contains "checkout"]``, the empty selector) is
tried on every trace: each trace is decoded for it.

**Live specs.** A live trace has no trigger: a spec that selects Tracetest's trigger span or asserts on
``tracetest.response.*`` cannot be checked on one; it is counted with result ``not_applicable``, never run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.trace_tests.assertion import RESPONSE
from pipelines.trace_tests.definition import DefinitionError, Spec, TestDefinition, load_definition
from pipelines.trace_tests.selector import Selector
from pipelines.trace_tests.spans import TRIGGER_SPAN_NAME

SUFFIXES = (".yaml", ".yml")
MAX_DEFINITIONS = 1000


class LibraryError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def live_applicable(spec: Spec) -> bool:
    """Whether a spec can be checked on a live trace (no trigger span, no response)."""
    if any(a.key in RESPONSE for a in spec.assertions):
        return False
    return not any(f.key in ("name", "tracetest.span.name") and f.value == TRIGGER_SPAN_NAME
                   for path in spec.selector.paths for seg in path for f in seg.filters)


@dataclass(frozen=True)
class LiveTest:
    definition: TestDefinition
    selector: Selector | None  # the first live spec's: a trace is the test's when it selects a span; None: never
    names: frozenset[str] | None  # span names one of which the trace must have; None: no such condition
    live: tuple[bool, ...]  # per spec: can be checked on a live trace


def first_names(selector: Selector) -> frozenset[str] | None:
    """The span names a selector's first segments require (``span[name="POST /checkout" ...]``): a trace with
    none of them has no span it selects. None when some path requires no name."""
    names: set[str] = set()
    for path in selector.paths:
        named = [f.value for f in path[0].filters if f.op == "=" and f.key in ("name", "tracetest.span.name")]
        if not named or not named[0]:
            return None  # (an empty name is not written on the wire: no bytes to search for)
        names.add(named[0])
    return frozenset(names) if names else None


def prepare(test: TestDefinition) -> LiveTest:
    live = tuple(live_applicable(s) for s in test.specs)
    selector = next((s.selector for s, ok in zip(test.specs, live, strict=True) if ok), None)
    names = first_names(selector) if selector is not None else frozenset()
    return LiveTest(test, selector, names, live)


def definition_files(location: str) -> list[Path]:
    p = Path(location)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.suffix in SUFFIXES and f.is_file())
    return [p]


def snapshot(location: str) -> tuple[tuple[str, float, int], ...]:
    """What changes when a definition file is added, removed or edited (path, mtime, size)."""
    out = []
    for f in definition_files(location):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime, st.st_size))
    return tuple(out)


def load_library(location: str) -> list[LiveTest]:
    """Every definition at ``location``; raises :class:`LibraryError` listing each file refused (a test name
    used twice is refused too: metrics and results are per test name)."""
    files = definition_files(location)
    if len(files) > MAX_DEFINITIONS:
        raise LibraryError([f"{location}: {len(files)} definition files (at most {MAX_DEFINITIONS})"])
    problems: list[str] = []
    tests: list[LiveTest] = []
    names: dict[str, str] = {}
    for f in files:
        try:
            d = load_definition(f, os.environ, live=True)
        except DefinitionError as e:
            problems.append(str(e))
            continue
        if d.name in names:
            problems.append(f"{f}: test name {d.name!r} is already used by {names[d.name]}")
            continue
        names[d.name] = str(f)
        tests.append(prepare(d))
    if problems:
        raise LibraryError(problems)
    if not tests:
        raise LibraryError([f"{location}: no definition files (*.yaml, *.yml)"])
    return tests
