"""Definitions from Tracetest's own public examples (tests/data/tracetest-examples, MIT, see its README): those
that use only supported features load unchanged and run on traces shaped like their systems'; the others are
refused with a message naming the file, the spec and the feature."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.trace_tests.definition import DefinitionError, load_definition
from pipelines.trace_tests.evaluate import run_test
from pipelines.trace_tests.spans import TestSpan, TestTrace, trigger_span
from tests.conftest import ROOT
from tests.pipelines.trace_tests.shop_trace import MS, T0, TRACE_ID, sid, span

EXAMPLES = ROOT / "tests" / "data" / "tracetest-examples"
RESPONSE_200 = {"tracetest.response.status": 200, "tracetest.response.body": "[]"}


def trace_of(spans: list[tuple[object, str]], *, trigger: bool = True, status_of: int = 200) -> TestTrace:
    made = [TestSpan(s, {"service.name": svc}) for s, svc in spans]  # type: ignore[arg-type]
    if trigger:
        made.append(trigger_span(TRACE_ID, sid(99), T0 - MS, T0 + 200 * MS,
                                 {**RESPONSE_200, "tracetest.response.status": status_of}))
    return TestTrace(TRACE_ID, made, RESPONSE_200)


def payment(risk_status: int) -> TestTrace:
    http = {"http.method": "POST"}
    return trace_of([
        (span(1, 99, "POST /executePaymentOrder", 0, 90, **http, **{"http.target": "/executePaymentOrder",
                                                                      "http.status_code": 200}), "your-api"),
        (span(2, 1, "POST", 5, 80, **http, **{"http.target": "/payment/execute", "http.status_code": 200}),
         "your-api"),
        (span(3, 2, "POST /computeRisk", 10, 20, **http, **{"http.target": "/computeRisk",
                                                             "http.status_code": risk_status}), "risk-analysis"),
    ])


def books(availability: int) -> TestTrace:
    spans: list[tuple[object, str]] = [(span(1, 99, "Books List", 0, 50, **{"books.list.count": 3}), "books")]
    spans += [(span(10 + i, 1, "Availability Check", 1 + i, 5), "availability") for i in range(availability)]
    return trace_of(spans)


def pokemon(error: str) -> TestTrace:
    return trace_of([(span(1, 99, "fetchHandler POST", 0, 30, **{"pokeapi.response.error": error}), "worker"),
                     (span(2, 1, "D1 Add Pokemon", 5, 3, **{"db.system": "d1"}), "worker")])


def vercel(status: int) -> TestTrace:
    return trace_of([(span(1, 99, "GET /api/pokemon", 0, 30, **{"http.status_code": 200}), "next-app"),
                     (span(2, 1, "GET pokeapi", 5, 20, kind=3, **{"http.status_code": status}), "next-app")])


@pytest.mark.parametrize(("file", "good", "bad", "failing"), [
    ("test-with-success.yaml", payment(200), payment(500), ["Risk-Analysis API calculation is returning OK"]),
    ("books-list.yaml", books(4), books(3), ['span[name = "Books List"] span[name = "Availability Check"]']),
    ("import-pokemon-pass.yaml", pokemon("false"), pokemon("true"), ["Validate that it does not contain an error."]),
    ("api.pokemon.spec.docker.yaml", vercel(200), vercel(404), ["All HTTP Spans: Status code is 200"]),
])
def test_supported_examples_run_unchanged(file: str, good: TestTrace, bad: TestTrace, failing: list[str]) -> None:
    test = load_definition(EXAMPLES / file)
    ok = run_test(test, good)
    assert ok.passed, [(s.spec.name, [c for a in s.assertions for c in a.checks]) for s in ok.specs]
    broken = run_test(test, bad)
    assert [s.spec.name for s in broken.failed_specs] == failing


@pytest.mark.parametrize(("file", "needles"), [
    ("import-pokemons.yaml", ["spec.specs[0] ('POST /pokemon/import was called successfuly')", "assertions[1]",
                              "json_path", "not supported"]),
    ("list-tests.yaml", ["type None is not supported (only type: Test)"]),
])
def test_unsupported_examples_are_refused(file: str, needles: list[str]) -> None:
    with pytest.raises(DefinitionError) as info:
        load_definition(EXAMPLES / file)
    message = str(info.value)
    assert message.startswith(str(EXAMPLES / file) + ": ")
    for needle in needles:
        assert needle in message


def test_every_example_is_accounted_for() -> None:
    files = sorted(p.name for p in Path(EXAMPLES).glob("*.yaml"))
    assert files == sorted(["test-with-success.yaml", "books-list.yaml", "import-pokemon-pass.yaml",
                            "api.pokemon.spec.docker.yaml", "import-pokemons.yaml", "list-tests.yaml"])
