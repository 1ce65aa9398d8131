"""The trace_tests processor live, end to end: the OpenTelemetry SDK exports checkout traces to a collector
subprocess running trace_tests -> alert_routing (trigger: trace_tests) -> tail_sampling (string_attribute on
tracetest.failed). Only the failing traces are kept, each marked on its root span; /metrics counts every spec
run exactly; the spec's owner is paged once for the burst; the debug route returns a trace's results."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector.otlpjson import decode_request
from tests.conftest import ROOT, free_port, wait_for
from tests.e2e.test_triage import Capture

DEFINITION = """
type: Test
spec:
  name: checkout
  owner: payments
  trigger: {type: http, httpRequest: {method: POST, url: "http://shop/checkout"}}
  specs:
    - selector: span[name="POST /checkout" service.name="shop-frontend"]
      name: answers 2xx
      assertions: [attr:http.response.status_code < 300]
    - selector: span[name="POST /checkout"] span[tracetest.span.type="rpc"]
      name: payment ok
      assertions: ['attr:tracetest.span.status_code != "error"']
"""


def make_traces(n_ok: int, n_fail: int) -> tuple[list[object], set[bytes], set[bytes]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-frontend"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop")
    ok: set[bytes] = set()
    bad: set[bytes] = set()
    for i in range(n_ok + n_fail):
        fail = (i % 3 == 2 and len(bad) < n_fail) or len(ok) >= n_ok
        with (tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER,
                                           attributes={"http.response.status_code": 200}) as root,
              tracer.start_as_current_span("payments.Charge/Pay", kind=SpanKind.CLIENT,
                                           attributes={"rpc.system": "grpc"}) as pay):
            if fail:
                pay.set_status(Status(StatusCode.ERROR, "declined"))
        (bad if fail else ok).add(root.get_span_context().trace_id.to_bytes(16, "big"))
    provider.shutdown()
    return list(memory.get_finished_spans()), ok, bad


def kept(out: Path) -> dict[bytes, dict[str, str]]:
    """trace id -> root span's string attributes, from the file exporter's output."""
    found: dict[bytes, dict[str, str]] = {}
    if not out.exists():
        return found
    for line in out.read_text().splitlines():
        if not line.strip():
            continue
        for rs in decode_request(line.encode()).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    if not s.parent_span_id:
                        found[s.trace_id] = {kv.key: kv.value.string_value for kv in s.attributes}
    return found


@pytest.mark.timeout(120)
def test_live_trace_tests_keep_count_and_page_once(tmp_path: Path, collector_factory) -> None:
    capture = Capture()
    try:
        defs = tmp_path / "trace-tests"
        defs.mkdir()
        (defs / "checkout.yaml").write_text(DEFINITION)
        grpc_port, metrics_port = free_port(), free_port()
        out = tmp_path / "kept.jsonl"
        cfg = tmp_path / "collector.yaml"
        cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
  trace_tests:
    definitions: "{defs}"
    alerting: {{window: 1m, min_failures: 3, failure_rate: 0.2}}
  alert_routing:
    trigger: trace_tests
    group_wait: 1s
    route: {{receiver: hook}}
    receivers: [{{name: hook, webhook: {{url: "{capture.url}/hook"}}}}]
  tail_sampling:
    decision_wait: 1s
    policies:
      - name: failed-trace-tests
        type: string_attribute
        string_attribute: {{key: tracetest.failed, values: [".+"], enabled_regex_matching: true}}
exporters:
  file: {{path: "{out}"}}
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
    debug: true
  pipelines:
    traces:
      receivers: [otlp]
      processors: [trace_tests, alert_routing, tail_sampling]
      exporters: [file]
""")
        col = collector_factory([cfg], metrics_port)
        col.wait_ready()
        spans, _ok, bad = make_traces(40, 20)
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
        try:
            assert exporter.export(spans) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
        finally:
            exporter.shutdown()

        wait_for(lambda: len(kept(out)) >= len(bad), timeout=30)
        wait_for(lambda: len(capture.at("/hook")) >= 1, timeout=30)
        got = kept(out)
        assert set(got) == bad  # every failing trace kept, no passing one
        assert all(attrs.get("tracetest.failed") == "checkout: payment ok" for attrs in got.values())

        metric = col.metric
        assert metric("tracetriage_trace_tests_total", test="checkout", spec="answers 2xx", result="pass") == 60
        assert metric("tracetriage_trace_tests_total", test="checkout", spec="answers 2xx", result="fail") == 0
        assert metric("tracetriage_trace_tests_total", test="checkout", spec="payment ok", result="pass") == 40
        assert metric("tracetriage_trace_tests_total", test="checkout", spec="payment ok", result="fail") == 20

        one = bad.copy().pop()
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/api/trace-tests/{one.hex()}", timeout=5) as r:
            result = json.loads(r.read())
        assert result["results"][0]["test"] == "checkout" and result["results"][0]["passed"] is False
        failed_spec = next(s for s in result["results"][0]["specs"] if s["name"] == "payment ok")
        assert failed_spec["passed"] is False and failed_spec["assertions"][0]["spans"][0]["actual"] == '"error"'

        # one page for the burst: wait past another group_wait, still one
        import time

        time.sleep(3)
        pages = capture.at("/hook")
        assert len(pages) == 1, pages
        alerts = pages[0]["alerts"]
        assert len(alerts) == 1
        labels, ann = alerts[0]["labels"], alerts[0]["annotations"]
        assert labels["alertname"] == "TraceTestFailed" and labels["team"] == "payments"
        assert labels["signal"] == "checkout" and labels["span_name"] == "payment ok"
        examples = ann["example_trace_ids"].split(",")
        assert examples and {bytes.fromhex(e) for e in examples} <= bad
        assert col.terminate() == 0
        assert col.stderr.count("Traceback") == 0

        # The file exporter's output, evaluated offline with the same definition: the same verdicts as live.
        r = subprocess.run([sys.executable, "-m", "collector", "test", "run", "--definition",
                            str(defs / "checkout.yaml"), "--traces", str(out)], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stdout.splitlines()[-1] == "20 test runs, 40 specs: 20 passed, 20 failed"
        failed = {line.rsplit(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("FAIL  checkout ")}
        assert failed == {t.hex() for t in bad}
        assert r.stdout.count("FAIL  payment ok") == 20 and r.stdout.count("PASS  answers 2xx") == 20
    finally:
        capture.close()
