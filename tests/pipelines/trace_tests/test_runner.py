"""``tracetriage test run`` end to end: a real HTTP service instrumented with the OpenTelemetry SDK exports to the
command's embedded OTLP receiver; the command fires the trigger, collects the trace and checks it. A correct
definition passes (exit 0), a wrong one fails with a readable report (exit 1), the JUnit XML reads back with
junitparser, and ``--traces`` on the saved traces gives the same results as the live run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from tests.conftest import ROOT, free_port
from tests.pipelines.trace_tests.support import trace_tests_collector

CORRECT = """
type: Test
spec:
  name: Checkout places the order
  trigger:
    type: http
    httpRequest:
      method: POST
      url: http://127.0.0.1:${env:SHOP_PORT}/checkout
      headers: [{key: Content-Type, value: application/json}]
      body: '{"cart": [1, 2]}'
  specs:
    - selector: span[name="Tracetest trigger"]
      name: the shop answers 200
      assertions:
        - attr:tracetest.response.status = 200
        - attr:tracetest.response.body contains "order"
    - selector: span[tracetest.span.type="http" name="POST /checkout"]
      name: the server span
      assertions:
        - attr:http.response.status_code = 200
        - attr:tracetest.span.duration < 10s
    - selector: span[name="POST /checkout"] span[tracetest.span.type="database"]
      name: one order query
      assertions:
        - attr:tracetest.selected_spans.count = 1
        - attr:db.statement contains "orders"
    - selector: span[tracetest.span.type="rpc" service.name="shop-frontend"]
      name: payment is called
      assertions:
        - attr:rpc.service = "payments.Charge"
        - attr:tracetest.span.status_code != "error"
"""

# The same test with three wrong expectations: status, query count, payment service name.
WRONG = (CORRECT.replace("name: Checkout places the order", "name: Checkout (wrong expectations)")
         .replace("attr:tracetest.response.status = 200", "attr:tracetest.response.status = 201")
         .replace("attr:tracetest.selected_spans.count = 1", "attr:tracetest.selected_spans.count = 2")
         .replace('attr:rpc.service = "payments.Charge"', 'attr:rpc.service = "payments.Refund"'))


@pytest.fixture
def shop() -> Iterator[tuple[int, int, int]]:
    """The instrumented service (its port) and the ports the command's receiver will take."""
    port, grpc_port, http_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.pipelines.trace_tests.shop_service", str(port),
                             f"http://127.0.0.1:{grpc_port}"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port, grpc_port, http_port
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


def tracetriage(*args: str, env_port: int) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "SHOP_PORT": str(env_port)}
    return subprocess.run([sys.executable, "-m", "collector", "test", "run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def receiver_args(grpc_port: int, http_port: int) -> list[str]:
    return ["--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}", "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
            "--settle", "0.5", "--timeout", "20"]


def test_live_run_passes_fails_and_writes_junit(shop: tuple[int, int, int], tmp_path: Path) -> None:
    port, grpc_port, http_port = shop
    good, bad = tmp_path / "checkout.yaml", tmp_path / "checkout-wrong.yaml"
    good.write_text(CORRECT)
    bad.write_text(WRONG)

    ok = tracetriage("--definition", str(good), *receiver_args(grpc_port, http_port),
                     "--junit", str(tmp_path / "ok.xml"), env_port=port)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"PASS  Checkout places the order  ({good})  trace ")
    assert "4 specs: 4 passed, 0 failed" in ok.stdout

    saved = tmp_path / "traces.jsonl"
    failed = tracetriage("--definition", str(good), str(bad), *receiver_args(grpc_port, http_port),
                         "--junit", str(tmp_path / "report.xml"), "--save-traces", str(saved), env_port=port)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    out = failed.stdout
    # the report: each spec passes or fails, with the selected spans and the actual values
    assert "FAIL  Checkout (wrong expectations)" in out
    assert "FAIL  attr:tracetest.response.status = 201" in out
    assert "FAIL  tracetest: Tracetest trigger (" in out and "actual 200" in out
    assert "FAIL  attr:tracetest.selected_spans.count = 2" in out
    assert "shop-frontend: SELECT shop.orders (" in out and "actual 1" in out
    assert 'FAIL  attr:rpc.service = "payments.Refund"' in out and 'actual "payments.Charge"' in out
    assert "PASS  one order query" in out.split("Checkout (wrong expectations)")[0]
    assert "8 specs: 5 passed, 3 failed" in out

    xml = JUnitXml.fromfile(str(tmp_path / "report.xml"))
    suites = list(xml)
    names = [s.name.split(" [trace ")[0] for s in suites]
    assert names == ["Checkout places the order", "Checkout (wrong expectations)"]
    assert (xml.tests, xml.failures, xml.errors) == (8, 3, 0)
    failing = [c.name for c in suites[1] if any(isinstance(r, Failure) for r in c.result)]
    assert failing == ["the shop answers 200", "one order query", "payment is called"]
    assert all(not c.result for c in suites[0])

    # --traces on what the live run saw: the same results, report for report
    offline = tracetriage("--definition", str(good), str(bad), "--traces", str(saved),
                          "--junit", str(tmp_path / "offline.xml"), env_port=port)
    assert offline.returncode == 1
    assert offline.stdout == failed.stdout
    assert (tmp_path / "offline.xml").read_bytes() == (tmp_path / "report.xml").read_bytes()


def test_trigger_failure_and_missing_trace_are_errors(tmp_path: Path) -> None:
    dead = free_port()
    d = tmp_path / "t.yaml"
    d.write_text(CORRECT)
    grpc_port, http_port = free_port(), free_port()
    r = tracetriage("--definition", str(d), *receiver_args(grpc_port, http_port), env_port=dead)
    assert r.returncode == 1
    assert f"trigger POST http://127.0.0.1:{dead}/checkout failed" in r.stdout


def test_unsupported_definition_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "t.yaml"
    d.write_text(CORRECT.replace("attr:db.statement contains", "attr:db.statement | json_path '$.a' ="))
    r = tracetriage("--definition", str(d), "--traces", str(tmp_path / "none.jsonl"), env_port=1)
    assert r.returncode == 2
    assert f"refused: {d}: spec.specs[2] ('one order query').assertions[1]" in r.stderr
    assert "not supported" in r.stderr


@pytest.mark.timeout(180)
def test_collector_mode_reads_results_from_a_running_tracetriage(tmp_path: Path, collector_factory) -> None:
    """``--collector URL``: the service exports to a collector running trace_tests with the same definitions;
    the command fires the trigger and reads the trace's results from the collector (debug route); the
    trigger's own specs are checked by the command."""
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "checkout.yaml").write_text(CORRECT)
    (defs / "checkout-wrong.yaml").write_text(WRONG)
    col, grpc_port, metrics_port = trace_tests_collector(tmp_path, defs, collector_factory)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.pipelines.trace_tests.shop_service", str(port),
                             f"http://127.0.0.1:{grpc_port}"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{metrics_port}"
        ok = tracetriage("--definition", str(defs / "checkout.yaml"), "--collector", url, "--timeout", "30",
                         env_port=port)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "4 specs: 4 passed, 0 failed" in ok.stdout
        bad = tracetriage("--definition", str(defs / "checkout-wrong.yaml"), "--collector", url, "--timeout", "30",
                          "--junit", str(tmp_path / "r.xml"), env_port=port)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        out = bad.stdout
        assert "FAIL  attr:tracetest.response.status = 201" in out  # checked here, on the trigger span
        assert "FAIL  attr:tracetest.selected_spans.count = 2" in out  # read from the collector
        assert "shop-frontend: SELECT shop.orders (" in out and "actual 1" in out
        assert 'FAIL  attr:rpc.service = "payments.Refund"' in out and 'actual "payments.Charge"' in out
        assert "4 specs: 1 passed, 3 failed" in out
        assert JUnitXml.fromfile(str(tmp_path / "r.xml")).failures == 3
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()
    assert col.terminate() == 0
