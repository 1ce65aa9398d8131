"""Readable reports of test results: text for a terminal, JUnit XML for CI, JSON for the debug endpoint."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from pipelines.trace_tests.evaluate import SpecResult, TestResult

MAX_SPANS_SHOWN = 10


def _spec_lines(spec: SpecResult) -> list[str]:
    mark = "PASS" if spec.passed else "FAIL"
    lines = [f"  {mark}  {spec.spec.name}", f"        selector: {spec.spec.selector.text or '(empty: every span)'}"]
    n = len(spec.selected)
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
            "selected": [sp.describe() for sp in s.selected[:MAX_SPANS_SHOWN]],
            "selected_count": len(s.selected),
            "assertions": [{
                "assertion": a.assertion.text,
                "passed": a.passed,
                "spans": [{"span": c.span.span_id.hex() if c.span is not None else "", "actual": c.actual,
                           "passed": c.passed, "error": c.error} for c in a.checks[:MAX_SPANS_SHOWN]],
            } for a in s.assertions],
        } for s in result.specs],
    }
