"""Readable reports of test results: text for a terminal, JUnit XML for CI, JSON for the debug endpoint."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines.trace_tests.assertion import SpanCheck
from pipelines.trace_tests.definition import TestDefinition
from pipelines.trace_tests.evaluate import AssertionResult, SpecResult, TestResult
from pipelines.trace_tests.spans import TestSpan

MAX_SPANS_SHOWN = 10


def _spec_lines(spec: SpecResult) -> list[str]:
    mark = "PASS" if spec.passed else "FAIL"
    lines = [f"  {mark}  {spec.spec.name}", f"        selector: {spec.spec.selector.text or '(empty: every span)'}"]
    n = spec.count
    lines.append(f"        selected {n} span{'s' if n != 1 else ''}")
    for ar in spec.assertions:
        lines.append(f"        {'ok  ' if ar.passed else 'FAIL'}  {ar.assertion.text}")
        for check in ar.checks[:MAX_SPANS_SHOWN]:
            who = check.span.describe() if check.span is not None else "(no span)"
            got = check.error or f"actual {check.actual}"
            lines.append(f"                {'ok  ' if check.passed else 'FAIL'}  {who}: {got}")
        if len(ar.checks) > MAX_SPANS_SHOWN:
            failed = sum(not c.passed for c in ar.checks[MAX_SPANS_SHOWN:])
            lines.append(f"                ... {len(ar.checks) - MAX_SPANS_SHOWN} more spans ({failed} failed)")
    return lines


def text_report(result: TestResult) -> str:
    head = f"{'PASS' if result.passed else 'FAIL'}  {result.test.name}  ({result.test.path})"
    if result.trace_id:
        head += f"  trace {result.trace_id.hex()}"
    lines = [head]
    if result.error:
        lines.append(f"  error: {result.error}")
    for spec in result.specs:
        lines.extend(_spec_lines(spec))
    return "\n".join(lines) + "\n"


def summary(results: Sequence[TestResult]) -> str:
    specs = [s for r in results for s in r.specs]
    failed = sum(not s.passed for s in specs)
    errors = sum(bool(r.error) for r in results)
    return (f"{len(results)} test run{'s' if len(results) != 1 else ''}, {len(specs)} specs: "
            f"{len(specs) - failed} passed, {failed} failed" + (f", {errors} errors" if errors else "") + "\n")


def junit_xml(results: Sequence[TestResult]) -> bytes:
    """One ``testsuite`` per test run (per trace), one ``testcase`` per spec."""
    root = ET.Element("testsuites", name="tracetriage trace tests")
    total = fails = errs = 0
    for r in results:
        suite_name = r.test.name + (f" [trace {r.trace_id.hex()}]" if r.trace_id else "")
        failures = sum(not s.passed for s in r.specs)
        suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(max(1, len(r.specs))),
                              failures=str(failures), errors=str(int(bool(r.error))), file=r.test.path)
        total += max(1, len(r.specs))
        fails += failures
        if r.error:
            errs += 1
            case = ET.SubElement(suite, "testcase", classname=r.test.name, name="run")
            ET.SubElement(case, "error", message=r.error).text = r.error
            continue
        for s in r.specs:
            case = ET.SubElement(suite, "testcase", classname=r.test.name, name=s.spec.name)
            if not s.passed:
                bad = [a for a in s.assertions if not a.passed]
                msg = "; ".join(a.assertion.text for a in bad)
                ET.SubElement(case, "failure", message=f"failed: {msg}", type="AssertionFailed").text = (
                    "\n".join(_spec_lines(s)))
    root.set("tests", str(total))
    root.set("failures", str(fails))
    root.set("errors", str(errs))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def result_json(result: TestResult) -> dict[str, Any]:
    return {
        "test": result.test.name,
        "file": result.test.path,
        "trace_id": result.trace_id.hex(),
        "passed": result.passed,
        "error": result.error,
        "specs": [{
            "name": s.spec.name,
            "selector": s.spec.selector.text,
            "passed": s.passed,
            "selected": [_span_json(sp) for sp in s.selected[:MAX_SPANS_SHOWN]],
            "selected_count": s.count,
            "assertions": [{
                "assertion": a.assertion.text,
                "passed": a.passed,
                "checked": len(a.checks),
                # the failing checks first: a reader (and test run --collector) sees why it failed
                "spans": [{"span": _span_json(c.span) if c.span is not None else None, "actual": c.actual,
                           "passed": c.passed, "error": c.error}
                          for c in sorted(a.checks, key=lambda c: c.passed)[:MAX_SPANS_SHOWN]],
            } for a in s.assertions],
        } for s in result.specs],
    }


def _span_json(span: TestSpan) -> dict[str, str]:
    return {"span_id": span.span_id.hex(), "service": span.service, "name": span.name}


def result_from_json(doc: dict[str, Any], test: TestDefinition) -> TestResult:
    """A result read back from :func:`result_json` (``tracetriage test run --collector``), for the same reports.
    Specs of ``test`` missing from ``doc`` are left out; spans carry only their id, service and name."""
    specs = {s.name: s for s in test.specs}
    out: list[SpecResult] = []
    for sd in doc.get("specs", []):
        spec = specs.get(sd.get("name"))
        if spec is None:
            continue
        spans: dict[str, TestSpan] = {}
        selected = tuple(s for s in (_span_of(d, spans) for d in sd.get("selected", [])) if s is not None)
        by_text = {a.text: a for a in spec.assertions}
        results = []
        for ad in sd.get("assertions", []):
            assertion = by_text.get(ad.get("assertion"))
            if assertion is None:
                continue
            checks = tuple(SpanCheck(_span_of(c.get("span"), spans), c.get("actual", ""), bool(c.get("passed")),
                                     c.get("error", "")) for c in ad.get("spans", []))
            results.append(AssertionResult(assertion, checks))
        out.append(SpecResult(spec, selected, tuple(results), int(sd.get("selected_count", len(selected)))))
    return TestResult(test, bytes.fromhex(doc.get("trace_id", "")), tuple(out), str(doc.get("error", "")))


def _span_of(d: dict[str, str] | None, spans: dict[str, TestSpan]) -> TestSpan | None:
    if not d:
        return None
    got = spans.get(d["span_id"])
    if got is None:
        proto = Span(span_id=bytes.fromhex(d["span_id"]), name=d.get("name", ""))
        got = spans[d["span_id"]] = TestSpan(proto, {"service.name": d.get("service", "")})
    return got
