"""The ``trace_tests`` trace stage: the same Tracetest specs as CI, on every live trace.

For each complete trace (place it before ``tail_sampling`` to test every trace, not only the kept ones), the
tests whose first selector may match are found from the wire bytes, without decoding: each span name the
definitions' first selectors require is looked for as a span encodes it (field 5: ``2a``, the length, the
UTF-8 name) in each origin's span bytes: one regular expression over all of them (one ``in`` for a single name; the
expression scans a trace's bytes once whatever the number of names, where an ``in`` each costs about as much
as the whole expression). A hit may be in other bytes than a name (an attribute value, an id): it only
makes the trace a candidate; a span with the name always holds those bytes, so no applicable test is missed.
Before that, the trace's resources rule out the tests whose first selector filters on a resource attribute
they contradict (``service.name="checkout"`` on another service's trace); a one-origin trace whose resource
rules out every test is not searched at all (both kept per origin and names found, bounded). Only then is the
trace decoded, once, and each test whose first selector selects a span runs its specs (which decides exactly):
a passing spec is answered without its report (:mod:`pipelines.trace_tests.live`), a failing one is evaluated
in full. A test whose first selector requires no name is tried on every trace (counted in
``tracetriage_trace_tests_every_trace``).
``tracetriage_trace_tests_total{test, spec, result}`` counts pass, fail and not_applicable (a spec about the
trigger, which a live trace has not). A failing trace gets ``tracetest.failed`` on its root span (``annotate``):
the failed specs as ``test: spec``, joined by ``"; "``, for a ``string_attribute`` policy to keep it. A failing spec
whose failures in the ``alerting`` window reach ``min_failures`` and ``failure_rate`` leaves a
:class:`~pipelines.trace_tests.model.TestFailure` in ``trace.notes`` for ``alert_routing`` (``trigger:
trace_tests``). The definitions are re-read when their files change; a bad edit keeps the running set (logged,
counted). With ``service.telemetry.debug`` on, ``GET /api/trace-tests/{trace_id}`` returns the last results for
a trace.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, ge, le
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from collector import Host, Settings
from collector.consumer import Capabilities, TraceBufferSettings
from collector.model import Origin, Trace
from collector.wire import frame, span_entries, span_entry, span_name_field
from pipelines.ownership import OwnershipSource
from pipelines.trace_tests._layout import R_ASSERTION, R_BAD, R_SELECTED, R_SPAN, R_SPAN_END, R_SPEC, R_TRACE
from pipelines.trace_tests.assertion import Assertion, SpanCheck
from pipelines.trace_tests.compiled import FAILED, FALLBACK, PASSED, UNTESTED, Checked, CompiledTests
from pipelines.trace_tests.config import Config
from pipelines.trace_tests.definition import Spec
from pipelines.trace_tests.evaluate import SpecResult, TestResult, run_spec
from pipelines.trace_tests.library import LibraryError, LiveTest, load_library, snapshot
from pipelines.trace_tests.live import LiveTrace, TestPlan, may_select, plan_tests
from pipelines.trace_tests.model import TEST_FAILURES, TestFailure
from pipelines.trace_tests.report import result_json
from pipelines.trace_tests.spans import TestSpan, Value, attributes
from pipelines.trace_tests.window import SpecWindow

if TYPE_CHECKING:
    from aiohttp import web

FAILED_ATTRIBUTE = "tracetest.failed"
_FAILED_KEY = FAILED_ATTRIBUTE.encode()
_FAILED_KEY_FIELD = frame(0x0A, _FAILED_KEY)  # (a KeyValue's key)
UNKNOWN_TEAM = "unknown"
MAX_NAME_SEARCHES = 1  # span names looked for with ``in``, one by one; more: one regular expression
MAX_ORIGINS = 10_000  # resources whose attributes are kept decoded (then the cache starts again)
MAX_CHOSEN = 10_000  # (origin, names found) pairs whose candidate tests are kept (then the cache starts again)
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not_applicable"


_SPAN_COUNT = attrgetter("span_count")


def needles_pattern(needles: list[bytes]) -> re.Pattern[bytes]:
    """One expression matching any of ``needles``, written as a trie (for ``POST /a`` and ``POST /b``: ``2a 07
    POST /``, then ``a`` or ``b``): at each byte, the alternatives sharing a prefix are tried once, not once
    each. The needles are prefix-free (a varint length, then that many bytes): at most one matches at a
    place."""
    trie: dict[int, Any] = {}
    for n in needles:
        node = trie
        for b in n:
            node = node.setdefault(b, {})

    def emit(node: dict[int, Any]) -> bytes:
        alternatives = [re.escape(bytes([b])) + emit(node[b]) for b in sorted(node)]
        if len(alternatives) <= 1:
            return alternatives[0] if alternatives else b""
        return b"(?:" + b"|".join(alternatives) + b")"

    return re.compile(emit(trie))


def _failure(r: SpecResult) -> tuple[list[Assertion], SpanCheck]:
    """The failed assertions of a failed spec's result, and its first failed check (in selection order)."""
    bad = [a for a in r.assertions if not a.passed]
    return [a.assertion for a in bad], next(c for a in bad for c in a.checks if not c.passed)


def _kernel_failure(spec: Spec, row: list[int], span: tuple[bytes | bytearray, Mapping[str, Value]] | None
                    ) -> tuple[list[Assertion], SpanCheck]:
    """:func:`_failure` of a spec the compiled check found failed (``row``: its R_* columns): the first failed
    check is the Python check of that assertion on the span it failed on first (its bytes and resource
    attributes: decoded only now), or on no span when none was selected."""
    bad = [a for i, a in enumerate(spec.assertions) if row[R_BAD] >> i & 1]
    view = TestSpan(Span.FromString(span[0]), span[1]) if span is not None else None
    return bad, spec.assertions[row[R_ASSERTION]].check(view, row[R_SELECTED], {})


def _attach(trace: Trace, notes: list[TestFailure]) -> None:
    """Attach failures to be paged to the trace (after any it has)."""
    if notes:
        existing: list[TestFailure] | None = trace.note(TEST_FAILURES)
        trace.notes[TEST_FAILURES] = notes if not existing else existing + notes


def _mark(trace: Trace, origin: Origin, chunk: bytes | bytearray, entry: int, at: int, end: int, value: str) -> None:
    """Set ``tracetest.failed`` on the span whose framed entry starts at ``entry`` of ``origin``'s chunk (the
    span's bytes from ``at`` to ``end``): only that span's entry changes. The attribute is appended to the
    span's bytes (a repeated field's entries may come anywhere, in order: it decodes as the last attribute);
    a span whose bytes hold the key already (marked before) is decoded and its value replaced."""
    body = chunk[at:end]
    if _FAILED_KEY in body:
        span = Span.FromString(body)
        _set_failed(span, value)
        body = span.SerializeToString()
    else:
        body += frame(0x4A, _FAILED_KEY_FIELD + frame(0x12, frame(0x0A, value.encode())))
    edited = bytearray(chunk)
    edited[entry:end] = span_entry(body)
    trace.replace_chunks({origin: edited}, same_errors=True)  # (tracetest.failed only)


def _set_failed(span: Span, value: str) -> None:
    for kv in span.attributes:
        if kv.key == FAILED_ATTRIBUTE:
            kv.value.string_value = value
            return
    span.attributes.add(key=FAILED_ATTRIBUTE).value.string_value = value


class TraceTestsProcessor:
    """See the module docstring."""

    def __init__(self, settings: Settings, config: Config) -> None:
        self.id = settings.id
        self._config = config
        self._log = settings.logger
        self._capabilities = Capabilities(mutates_data=config.annotate, trace_level=True)
        self.buffer_settings = TraceBufferSettings(decision_wait=float(config.decision_wait))
        self._snapshot = snapshot(config.definitions)
        self._tests: list[LiveTest] = load_library(config.definitions)
        self._by_name: dict[str, list[LiveTest]] = {}
        self._always: list[LiveTest] = []
        self._needles: list[tuple[bytes, str]] = []  # (a name as a span encodes it, the name)
        self._pattern: re.Pattern[bytes] | None = None  # all the needles, past MAX_NAME_SEARCHES of them
        self._overlap_free = True
        self._by_needle: dict[bytes, str] = {}
        self._indexed: list[LiveTest] | None = None
        self._plans: dict[str, TestPlan] = {}
        self._compiled: CompiledTests | None = None  # the compiled check (numba), when the tests compile
        self._chosen: dict[tuple[Origin, frozenset[bytes]], list[LiveTest]] = {}  # see _choose
        self._possible: dict[Origin, bool] = {}  # see _testable
        self._position: dict[str, int] = {}
        self._resources: dict[Origin, dict[str, Value]] = {}
        self._ownership = OwnershipSource(config.ownership, settings) if config.ownership is not None else None
        self._windows: dict[tuple[str, str], SpecWindow] = {}
        self._results: OrderedDict[bytes, list[dict[str, Any]]] | None = None  # with the debug route only
        self._tasks: list[asyncio.Task[None]] = []
        self._counters: dict[tuple[str, str, str], Any] = {}
        t = settings.telemetry
        label = str(settings.id)
        self._total = t.counter("tracetriage_trace_tests_total",
                                "Specs of trace tests run on live traces, by test, spec and result (pass, fail, "
                                "not_applicable: about the trigger, which a live trace has not).",
                                ("test", "spec", "result"))
        self._traces = t.counter("tracetriage_trace_tests_traces_total",
                                 "Traces seen by trace_tests: tested (some test applied), untested, or too_large "
                                 "(more than max_spans spans, not tested).", ("processor", "outcome"))
        self._tested, self._untested, self._too_large = (self._traces.labels(label, o)
                                                         for o in ("tested", "untested", "too_large"))
        self._reloads = t.counter("tracetriage_trace_tests_reloads_total",
                                  "Re-reads of the definitions after a change: ok, or error (the running set kept).",
                                  ("processor", "result"))
        self._definitions = t.gauge("tracetriage_trace_tests_definitions", "Test definitions loaded.",
                                    ("processor",)).labels(label)
        self._definitions.set(len(self._tests))
        self._position = {t.definition.name: i for i, t in enumerate(self._tests)}
        self._held = t.gauge("tracetriage_trace_tests_results_held",
                             "Traces whose last results are kept for the debug endpoint (at most max_results).",
                             ("processor",)).labels(label)
        self._every_trace = t.gauge("tracetriage_trace_tests_every_trace",
                                    "Definitions whose first live selector requires no span name: tried on every "
                                    "trace (each one decoded).", ("processor",)).labels(label)
        self._chosen_size = t.gauge("tracetriage_trace_tests_chosen_entries",
                                    "Origins, and (origin, span names found) pairs, whose candidate tests are kept: "
                                    f"at most {MAX_CHOSEN} of each (then that cache starts again).",
                                    ("processor",)).labels(label)
        self._label = label
        self._index(self._tests)  # (the compiled check compiled, or loaded from numba's cache, now)

    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def tests(self) -> list[LiveTest]:
        return self._tests

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        if self._ownership is not None:
            await self._ownership.start(host)
        if host.debug:
            self._results = OrderedDict()
            host.add_route("/api/trace-tests/{trace_id}", self._serve_result, debug=True)
        if self._config.reload_interval > 0 and not self._tasks:
            task = asyncio.create_task(self._reload_loop(), name=f"{self.id} reload")
            self._tasks.append(task)
            host.watch(task, self._log, f"trace_tests {self.id}")

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._ownership is not None:
            await self._ownership.shutdown()

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(float(self._config.reload_interval))
            await self.reload()

    async def reload(self) -> bool:
        """Re-read the definitions if a file changed (off the event loop); False when nothing changed or the
        new set is refused (the running one is kept)."""
        location = self._config.definitions
        now = await asyncio.to_thread(snapshot, location)
        if now == self._snapshot:
            return False
        self._snapshot = now
        try:
            tests = await asyncio.to_thread(load_library, location)
        except LibraryError as e:
            self._reloads.labels(self._label, "error").inc()
            self._log.error("trace_tests %s: definitions not reloaded, the running %d kept: %s", self.id,
                            len(self._tests), "; ".join(e.problems))
            return False
        self._tests = tests
        self._position = {t.definition.name: i for i, t in enumerate(tests)}
        self._definitions.set(len(tests))
        self._reloads.labels(self._label, "ok").inc()
        self._log.info("trace_tests %s: %d definitions loaded from %s", self.id, len(tests), location)
        return True

    # -- span path ---------------------------------------------------------------------------------------

    def _index(self, tests: list[LiveTest]) -> None:
        by_name: dict[str, list[LiveTest]] = {}
        for t in tests:
            for name in t.names or ():
                by_name.setdefault(name, []).append(t)
        self._by_name = by_name
        self._always = [t for t in tests if t.names is None and t.selector is not None]
        self._every_trace.set(len(self._always))
        self._needles = [(span_name_field(n), n) for n in by_name]
        self._by_needle = dict(self._needles)
        # The needles are prefix-free (a varint length, then that many bytes): at most one matches at a place.
        self._pattern = (needles_pattern([k for k, _ in self._needles])
                         if len(self._needles) > MAX_NAME_SEARCHES else None)
        # A hit can start inside another one's bytes only at a 2a byte past a needle's first: with none, the
        # hits do not overlap and one findall (a call in C) finds them all.
        self._overlap_free = all(0x2A not in k[1:] for k, _ in self._needles)
        self._plans = plan_tests(tests)
        self._compiled = CompiledTests.build(tests, self._plans)
        if self._compiled is not None:
            self._compiled.warm()
        self._chosen.clear()
        self._possible.clear()
        self._indexed = tests

    def _names_in(self, trace: Trace) -> set[str]:
        """The indexed span names whose wire form is in the trace's bytes (a superset of its span names that
        are indexed; exactly those when a stage before has decoded the trace)."""
        if trace.decoded:
            by_name = self._by_name
            return {s.name for g in trace.groups() for s in g.scope_spans.spans if s.name in by_name}
        found: set[str] = set()
        pattern = self._pattern
        for chunk in trace.chunks.values():
            if pattern is None:
                for needle, name in self._needles:
                    if needle in chunk:
                        found.add(name)
            elif self._overlap_free:
                by_needle = self._by_needle
                found.update(by_needle[hit] for hit in set(pattern.findall(chunk)))
            else:
                search, by_needle = pattern.search, self._by_needle
                m = search(chunk)
                while m is not None:
                    found.add(by_needle[m.group()])
                    m = search(chunk, m.start() + 1)  # (a hit inside another one's bytes is found too)
        return found

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        if self._indexed is not self._tests:
            self._index(self._tests)
        by_name, always, order = self._by_name, self._always, self._order
        max_spans = self._config.max_spans
        counts: dict[tuple[str, str, str], int] = {}
        tested = untested = too_large = 0
        now = time.monotonic()
        from_string = ScopeSpans.FromString
        names_in = self._names_in
        resource = self._resource
        pattern = self._pattern
        search = pattern.search if pattern is not None and not always else None
        findall = pattern.findall if pattern is not None and self._overlap_free else None
        chosen, possible = self._chosen, self._possible
        rest = traces
        compiled = self._compiled if self._results is None else None  # (the debug route keeps every report)
        if compiled is not None:
            rest, tested, untested, too_large = self._run_compiled(compiled, traces, counts, now)
        for trace in rest:
            if trace.span_count > max_spans:
                too_large += 1
                continue
            chunks = trace.chunks
            if findall is not None and len(chunks) == 1 and not trace.decoded:
                # The common case, inlined: one origin. Which tests may be about the trace depends only on the
                # origin and the names found: chosen once per (origin, names).
                origin = next(iter(chunks))
                testable = possible.get(origin)
                if testable is None:
                    testable = self._testable(origin)
                if not testable:  # no test's first selector can select a span of this resource's
                    untested += 1
                    continue
                chunk = chunks[origin]
                if search is not None:  # (no test without a name: most traces have none of the names)
                    m = search(chunk)
                    if m is None:
                        untested += 1
                        continue
                    needles = findall(chunk, m.start())
                else:
                    needles = findall(chunk)
                key = (origin, frozenset(needles))
                picked = chosen.get(key)
                if picked is None:
                    picked = self._choose(key)
                if not picked:
                    untested += 1
                    continue
                if self._test(trace, [(resource(origin), from_string(chunk).spans)], picked, counts, now):
                    tested += 1
                else:
                    untested += 1
                continue
            if (search is not None and len(chunks) == 1 and not trace.decoded
                    and search(next(iter(chunks.values()))) is None):
                untested += 1  # (names that may overlap) one origin, no name of a test in its bytes
                continue
            candidates = always
            found = names_in(trace) if by_name else ()
            if found:
                hits = {t.definition.name: t for name in found for t in by_name[name]}
                candidates = sorted([*always, *hits.values()], key=order)
            if not candidates:
                untested += 1
                continue
            # Tests none of whose first selectors can select a span of these origins (their resource attributes
            # decide a filter against it: a test about another service) need nothing decoded.
            if trace.decoded:  # (what a stage before changed is in its decoded spans, not yet in the chunks)
                groups = trace.groups()
                resources = [resource(g.origin) for g in groups]
                candidates = [t for t in candidates if t.selector is not None and may_select(t.selector, resources)]
                if not candidates:
                    untested += 1
                    continue
                decoded = [(r, g.scope_spans.spans) for r, g in zip(resources, groups, strict=True)]
            else:
                resources = [resource(o) for o in chunks]
                candidates = [t for t in candidates if t.selector is not None and may_select(t.selector, resources)]
                if not candidates:
                    untested += 1
                    continue
                decoded = [(r, from_string(chunk).spans) for r, chunk in zip(resources, chunks.values(), strict=True)]
            if self._test(trace, decoded, candidates, counts, now):
                tested += 1
            else:
                untested += 1
        if tested:
            self._tested.inc(tested)
        if untested:
            self._untested.inc(untested)
        if too_large:
            self._too_large.inc(too_large)
        for labels, n in counts.items():
            counter = self._counters.get(labels)
            if counter is None:
                counter = self._counters[labels] = self._total.labels(*labels)
            counter.inc(n)
        return traces

    def _run_compiled(self, compiled: CompiledTests, traces: list[Trace], counts: dict[tuple[str, str, str], int],
                      now: float) -> tuple[list[Trace], int, int, int]:
        """Check the traces with the compiled check; counts what it answered into ``counts`` and the windows,
        and marks its failures. Returns the traces left for the Python evaluation (a decoded trace, and those
        the check hands on), and the traces tested, untested and too large."""
        rest: list[Trace] = []
        untested = too_large = 0
        max_spans = self._config.max_spans
        compiled.new_round()
        known = compiled.rows.get
        # Most traces: one origin, held in two slots, gathered in bulk; the others (several origins, a dict of
        # chunks, decoded) one by one below.
        picked, origins, chunks, others = Trace.singles(traces)
        sizes = list(map(_SPAN_COUNT, picked))
        most = max(sizes, default=1)
        if most > max_spans:
            fits = list(map(le, sizes, repeat(max_spans)))
            too_large = len(fits) - sum(fits)
            picked, origins, chunks = list(compress(picked, fits)), list(compress(origins, fits)), list(
                compress(chunks, fits))
            most = max(compress(sizes, fits), default=1)
        rows: list[int] = list(map(known, origins))  # type: ignore[arg-type]
        if None in rows:
            for i in [i for i, row in enumerate(rows) if row is None]:
                rows[i] = compiled.row(origins[i], self._resource(origins[i]))
        selectable = list(map(ge, rows, repeat(0)))  # (negative: no test's first selector can select its spans)
        if not all(selectable):
            untested = len(selectable) - sum(selectable)
            picked, origins = list(compress(picked, selectable)), list(compress(origins, selectable))
            chunks, rows = list(compress(chunks, selectable)), list(compress(rows, selectable))
        parts = list(range(len(picked) + 1))
        for trace in others:
            n = trace.span_count
            if n > max_spans:
                too_large += 1
                continue
            if trace.decoded:
                rest.append(trace)  # (what a stage changed is in the decoded spans)
                continue
            testable = False
            for origin, chunk in trace.chunks.items():
                row = known(origin)
                if row is None:
                    row = compiled.row(origin, self._resource(origin))
                testable = testable or row >= 0
                if chunk:
                    chunks.append(chunk)
                    origins.append(origin)
                    rows.append(row)  # (a negative row: read only once a test applies)
            if not testable:
                del chunks[parts[-1]:], origins[parts[-1]:], rows[parts[-1]:]
                untested += 1
                continue
            parts.append(len(chunks))
            picked.append(trace)
            if n > most:
                most = n
        if not picked:
            return rest, 0, untested, too_large
        checked = compiled.run(chunks, rows, parts, most)
        status = checked.status
        rest.extend(picked[i] for i in np.flatnonzero(status == FALLBACK).tolist())
        tested = int(np.count_nonzero((status == PASSED) | (status == FAILED)))
        untested += int(np.count_nonzero(status == UNTESTED))
        failed = checked.failed
        fails: dict[tuple[int, int], int] = {}  # (test index, spec index) -> failed runs
        for p in failed[:, R_SPEC].tolist():
            key2 = compiled.spec_of(p)
            fails[key2] = fails.get(key2, 0) + 1
        applied = checked.applied
        if len(applied):  # every live spec of a test that applied ran once: passed, unless it failed
            per_test = np.bincount(applied[:, 1], minlength=len(compiled.plans))
            for ti in np.flatnonzero(per_test).tolist():
                runs = int(per_test[ti])
                plan = compiled.plans[ti]
                test = plan.test.definition
                for si, (spec, sp) in enumerate(zip(test.specs, plan.specs, strict=True)):
                    if sp is None:
                        key = (test.name, spec.name, NOT_APPLICABLE)
                        counts[key] = counts.get(key, 0) + runs
                        continue
                    passes = runs - fails.get((ti, si), 0)
                    if passes:
                        key = (test.name, spec.name, PASS)
                        counts[key] = counts.get(key, 0) + passes
                        self._window(test.name, spec.name).add_passes(now, passes)
        if len(failed):  # (a round's passing runs are in the windows before its failures)
            self._compiled_failures(compiled, checked, picked, chunks, origins, parts, counts, now)
        return rest, tested, untested, too_large

    def _compiled_failures(self, compiled: CompiledTests, checked: Checked, picked: list[Trace],
                           chunks: list[bytes | bytearray], origins: list[Origin], parts: list[int],
                           counts: dict[tuple[str, str, str], int], now: float) -> None:
        """Count, window, note and mark the failed specs the compiled check answered, trace by trace."""
        rows = checked.failed.tolist()
        i = 0
        while i < len(rows):
            t = rows[i][R_TRACE]
            trace = picked[t]
            failed_names: list[str] = []
            notes: list[TestFailure] = []
            while i < len(rows) and rows[i][R_TRACE] == t:
                row = rows[i]
                i += 1
                ti, si = compiled.spec_of(row[R_SPEC])
                test = compiled.plans[ti].test.definition
                spec = test.specs[si]
                key = (test.name, spec.name, FAIL)
                counts[key] = counts.get(key, 0) + 1
                window = self._window(test.name, spec.name)
                window.add(now, True, trace.trace_id)
                failed_names.append(f"{test.name}: {spec.name}")
                span: tuple[bytes | bytearray, Mapping[str, Value]] | None = None
                if row[R_SPAN] >= 0:
                    c, at = checked.locate(parts[t], parts[t + 1], row[R_SPAN])
                    span = (chunks[c][at:at + row[R_SPAN_END] - row[R_SPAN]], self._resource(origins[c]))
                note = self._due(test.name, spec.name, test.path, test.owner, partial(_kernel_failure, spec, row, span),
                                 window, trace.trace_id, now)
                if note is not None:
                    notes.append(note)
            _attach(trace, notes)
            entry, at, end = checked.roots[t].tolist()
            if entry >= 0 and self._config.annotate:  # (the root's place is known: no search for its id)
                c, at_entry = checked.locate(parts[t], parts[t + 1], entry)
                _mark(trace, origins[c], chunks[c], at_entry, at_entry + at - entry, at_entry + end - entry,
                      "; ".join(failed_names))

    def _window(self, test: str, spec: str) -> SpecWindow:
        window = self._windows.get((test, spec))
        if window is None:
            window = self._windows[(test, spec)] = SpecWindow(float(self._config.alerting.window))
        return window

    def _testable(self, origin: Origin) -> bool:
        """Whether some test's first selector may select a span of this resource's, whatever the span names."""
        resources = [self._resource(origin)]
        testable = any(t.selector is not None and may_select(t.selector, resources) for t in self._tests)
        if len(self._possible) >= MAX_CHOSEN:
            self._possible.clear()
        self._possible[origin] = testable
        self._chosen_size.set(len(self._chosen) + len(self._possible))
        return testable

    def _choose(self, key: tuple[Origin, frozenset[bytes]]) -> list[LiveTest]:
        """The tests that may be about a trace of one origin whose bytes hold these needles: those whose first
        selector requires one of their names, and those that require none, unless the origin's resource
        attributes rule them out (:func:`~pipelines.trace_tests.live.may_select`); in definition order."""
        origin, needles = key
        by_name, by_needle = self._by_name, self._by_needle
        hits = {t.definition.name: t for n in needles for t in by_name[by_needle[n]]}
        resources = [self._resource(origin)]
        chosen = [t for t in sorted([*self._always, *hits.values()], key=self._order)
                  if t.selector is not None and may_select(t.selector, resources)]
        if len(self._chosen) >= MAX_CHOSEN:
            self._chosen.clear()
        self._chosen[key] = chosen
        self._chosen_size.set(len(self._chosen) + len(self._possible))
        return chosen

    def _order(self, t: LiveTest) -> int:
        return self._position.get(t.definition.name, 0)

    def _resource(self, origin: Origin) -> dict[str, Value]:
        cache = self._resources
        got = cache.get(origin)
        if got is None:
            if len(cache) >= MAX_ORIGINS:
                cache.clear()
            got = cache[origin] = attributes(origin.resource().attributes)
        return got

    def _test(self, trace: Trace, decoded: Sequence[tuple[Mapping[str, Value], Sequence[Span]]],
              candidates: list[LiveTest], counts: dict[tuple[str, str, str], int], now: float) -> bool:
        live = LiveTrace(trace.trace_id, decoded)
        plans = self._plans
        keep = self._results is not None  # (the debug route shows every spec's report)
        results: list[TestResult] = []
        failed_names: list[str] = []
        notes: list[TestFailure] = []
        applied = False
        for lt in candidates:
            test = lt.definition
            plan = plans[test.name]
            if plan.first is None or not live.applies(plan.first):
                continue
            applied = True
            specs: list[SpecResult] = []
            for spec, sp in zip(test.specs, plan.specs, strict=True):
                if sp is None:
                    key = (test.name, spec.name, NOT_APPLICABLE)
                    counts[key] = counts.get(key, 0) + 1
                    continue
                passed = None if keep else live.passes(sp)
                r: SpecResult | None = None
                if not passed:  # failed, or not answered without the report: the full evaluation
                    r = run_spec(spec, live.full())
                    specs.append(r)
                    passed = r.passed
                key = (test.name, spec.name, PASS if passed else FAIL)
                counts[key] = counts.get(key, 0) + 1
                window = self._window(test.name, spec.name)
                window.add(now, not passed, trace.trace_id)
                if not passed:
                    assert r is not None
                    failed_names.append(f"{test.name}: {spec.name}")
                    note = self._due(test.name, spec.name, test.path, test.owner, partial(_failure, r),
                                     window, trace.trace_id, now)
                    if note is not None:
                        notes.append(note)
            if keep:
                results.append(TestResult(test, trace.trace_id, tuple(specs)))
        if not applied:
            return False
        root = live.full().root if failed_names and self._config.annotate else None
        self._finish(trace, notes, failed_names, root.span_id if root is not None else None)
        if keep:
            self._keep(trace.trace_id, [result_json(r) for r in results])
        return True

    def _finish(self, trace: Trace, notes: list[TestFailure], failed_names: list[str], root_id: bytes | None
                ) -> None:
        """Attach a tested trace's failures to be paged, and name its failed specs on its root span."""
        _attach(trace, notes)
        if failed_names and self._config.annotate and root_id is not None:
            self._annotate(trace, root_id, "; ".join(failed_names))

    def _due(self, test: str, spec: str, path: str, owner: str,
             failure: Callable[[], tuple[list[Assertion], SpanCheck]], window: SpecWindow, trace_id: bytes,
             now: float) -> TestFailure | None:
        """A failure to page: the spec's failures in the window reach the alerting thresholds. ``failure``
        gives the failed assertions and the first failed check (made only for a failure to page)."""
        alerting = self._config.alerting
        runs, failures = window.counts(now)
        if failures < alerting.min_failures or failures < alerting.failure_rate * runs:
            return None
        bad, first = failure()
        service = first.span.service if first.span is not None else ""
        team = owner or self._owner_of(service)
        who = first.span.describe() if first.span is not None else "(no span)"
        return TestFailure(test=test, spec=spec, file=path, team=team, service=service, trace_id=trace_id,
                           failed_assertions=tuple(a.text for a in bad),
                           actual=f"{who}: {first.error or 'actual ' + first.actual}", failures=failures, runs=runs,
                           window_s=float(alerting.window), examples=tuple(window.examples))

    def _owner_of(self, service: str) -> str:
        if self._ownership is None or not service:
            return UNKNOWN_TEAM
        return self._ownership.get().owner_of(service).name

    @staticmethod
    def _annotate(trace: Trace, span_id: bytes, value: str) -> None:
        """Set ``tracetest.failed`` on the first span with ``span_id``: in the wire bytes, re-encoding only that
        span, when every span's header is canonical (its id at a known place); else in the decoded trace."""
        if not trace.decoded:
            for origin, chunk in list(trace.wire_chunks()):
                at = span_entries(chunk, canonical=True)
                if at is None:
                    break  # (the decoded trace answers)
                for j in range(len(at) - 1):
                    k = at[j] + (2 if chunk[at[j] + 1] < 0x80 else 3)
                    if chunk[k + 20:k + 28] == span_id:  # (0a 10 <trace id> 12 08 <span id>)
                        _mark(trace, origin, chunk, at[j], k, at[j + 1], value)
                        return
            else:
                return  # (no span has that id)
        for group in trace.groups():
            for span in group.scope_spans.spans:
                if span.span_id == span_id:
                    _set_failed(span, value)
                    trace.mark_modified()
                    return

    def _keep(self, trace_id: bytes, results: list[dict[str, Any]]) -> None:
        held = self._results
        assert held is not None
        held[trace_id] = results
        held.move_to_end(trace_id)
        while len(held) > self._config.max_results:
            held.popitem(last=False)
        self._held.set(len(held))

    async def _serve_result(self, request: web.Request, tail: str) -> web.StreamResponse:
        from aiohttp import web

        try:
            trace_id = bytes.fromhex(tail)
            if len(trace_id) != 16:
                raise ValueError
        except ValueError:
            return web.Response(status=400, text=f"not a trace id (32 hex digits): {tail[:64]!r}\n")
        found = self._results.get(trace_id) if self._results is not None else None
        if found is None:
            return web.Response(status=404, text=f"no trace test result for trace {trace_id.hex()} (tested traces "
                                                 f"are kept for the last {self._config.max_results})\n")
        body = json.dumps({"trace_id": trace_id.hex(), "results": found}, indent=2)
        return web.Response(text=body, content_type="application/json")

