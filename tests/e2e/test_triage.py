"""End to end through the CLI with the OpenTelemetry SDK as the client:

* tail sampling: 1,000 traces with known errors and latencies; the exported set is exactly the expected
  set, each trace complete;
* root cause and routing: a failure three services deep pages the team that owns the database at the
  bottom (PagerDuty, with the team's key from the Backstage catalog), once for many failing requests, with
  the whole path; the signal's team gets nothing; the signal span carries the rootcause.* attributes;
  the incident resolves with the trigger's routing key.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import ROOT, free_port, wait_for
from tests.e2e.test_sdk import read_output

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


class Shop:
    """One TracerProvider per service, all recording into one in-memory exporter."""

    def __init__(self) -> None:
        self.memory = InMemorySpanExporter()
        self.providers: dict[str, TracerProvider] = {}

    def tracer(self, service: str) -> trace_api.Tracer:
        if service not in self.providers:
            p = TracerProvider(resource=Resource.create({"service.name": service}))
            p.add_span_processor(SimpleSpanProcessor(self.memory))
            self.providers[service] = p
        return self.providers[service].get_tracer("shop")

    def span(self, service: str, name: str, parent: trace_api.Span | None, start: int, end: int,
             kind: SpanKind = SpanKind.INTERNAL, error: bool = False,
             attributes: dict[str, Any] | None = None, ok: bool = False) -> trace_api.Span:
        ctx = trace_api.set_span_in_context(parent) if parent is not None else None
        s = self.tracer(service).start_span(name, context=ctx, kind=kind, start_time=start,
                                            attributes=attributes or {})
        if error:
            s.set_status(Status(StatusCode.ERROR, f"{name} failed"))
        elif ok:
            s.set_status(Status(StatusCode.OK))
        s.end(end_time=end)
        return s

    def spans(self) -> list[ReadableSpan]:
        return list(self.memory.get_finished_spans())

    def export(self, endpoint: str) -> None:
        exp = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        spans = self.spans()
        try:
            for i in range(0, len(spans), 500):
                assert exp.export(spans[i:i + 500]) is SpanExportResult.SUCCESS
        finally:
            exp.shutdown()
        for p in self.providers.values():
            p.shutdown()


def collector_config(tmp_path: Path, grpc_port: int, metrics_port: int, out: Path, processors: str,
                     pipeline: list[str], extensions: dict[str, Any] | None = None) -> Path:
    """``extensions``: id -> settings, each also listed in service.extensions."""
    extensions = extensions or {}
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
extensions: {json.dumps(extensions)}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
{processors}
exporters:
  file: {{path: "{out}"}}
service:
  extensions: {json.dumps(list(extensions))}
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{", ".join(pipeline)}]
      exporters: [file]
""")
    return cfg


def exported(out: Path) -> dict[bytes, list[Any]]:
    traces: dict[bytes, list[Any]] = {}
    if not out.exists():
        return traces
    for req in read_output(out):
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    traces.setdefault(s.trace_id, []).append(s)
    return traces


@pytest.mark.timeout(120)
def test_tail_sampling_keeps_exactly_the_expected_traces(tmp_path: Path, collector_factory) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    out = tmp_path / "kept.jsonl"
    cfg = collector_config(tmp_path, grpc_port, metrics_port, out, """
  tail_sampling:
    decision_wait: 1s
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 500}}
      - {name: vip, type: string_attribute, string_attribute: {key: tenant, values: [vip]}}
  batch: {timeout: 100ms}""", ["tail_sampling", "batch"])
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()

    shop = Shop()
    expected: set[bytes] = set()
    for i in range(1000):
        error, slow, vip = i % 10 == 3, i % 7 == 2, i % 50 == 11
        start = T0 + i * 10 * MS
        duration = (700 if slow else 40) * MS
        root = shop.span("frontend", "GET /", None, start, start + duration, SpanKind.SERVER,
                         attributes={"tenant": "vip" if vip else "basic"})
        shop.span("cart", "load", root, start + MS, start + 20 * MS, SpanKind.INTERNAL, error=error)
        shop.span("cart", "db", root, start + 2 * MS, start + 10 * MS, SpanKind.CLIENT)
        if error or slow or vip:
            expected.add(root.get_span_context().trace_id.to_bytes(16, "big"))
    shop.export(f"127.0.0.1:{grpc_port}")

    wait_for(lambda: len(exported(out)) >= len(expected), timeout=30)
    assert col.terminate() == 0
    got = exported(out)
    assert set(got) == expected
    assert all(len(spans) == 3 for spans in got.values()), "every kept trace is complete"
    assert col.stderr.count("Traceback") == 0


class Capture(ThreadingHTTPServer):
    """A real HTTP server recording every POST (path, JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                capture.posts.append((self.path, json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"success"}')

            def log_message(self, *args: object) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def at(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.posts if p == path]


@pytest.mark.timeout(120)
def test_failure_three_services_deep_pages_the_owner_of_the_root_cause(tmp_path: Path, collector_factory) -> None:
    capture = Capture()
    try:
        grpc_port, metrics_port = free_port(), free_port()
        out = tmp_path / "kept.jsonl"
        catalog = ROOT / "configs" / "catalog"
        cfg = collector_config(tmp_path, grpc_port, metrics_port, out, f"""
  root_cause:
    decision_wait: 1s
    signals: [{{name: checkout, service: frontend, span_name: place_order}}]
    ownership: ownership
  alert_routing:
    decision_wait: 1s
    ownership: ownership
    group_wait: 1s
    group_interval: 1s
    resolve_timeout: 2s
    trace_url: "https://grafana.example/explore?traceId={{trace_id}}"
    route:
      receiver: team-pager
      routes:
        - {{matchers: ['team="web"'], receiver: web-hook}}
    receivers:
      - {{name: team-pager, pagerduty: {{url: "{capture.url}/pd", insecure: true}}}}
      - {{name: web-hook, webhook: {{url: "{capture.url}/web"}}}}
  tail_sampling:
    decision_wait: 1s
    policies:
      - {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}""",
                               ["root_cause", "alert_routing", "tail_sampling"],
                               extensions={"ownership": {"catalog": [f"{catalog}/*.yaml"]}})
        col = collector_factory([cfg], metrics_port)
        col.wait_ready()

        shop = Shop()
        for i in range(50):
            s = T0 + i * 100 * MS
            order = shop.span("frontend", "place_order", None, s, s + 90 * MS, SpanKind.SERVER, error=True)
            call = shop.span("frontend", "POST /checkout", order, s + MS, s + 80 * MS, SpanKind.CLIENT, error=True)
            co = shop.span("checkout", "POST /checkout", call, s + 2 * MS, s + 79 * MS, SpanKind.SERVER, error=True)
            shop.span("checkout", "GET /cart", co, s + 3 * MS, s + 5 * MS, SpanKind.CLIENT)  # fine
            charge = shop.span("checkout", "charge", co, s + 6 * MS, s + 70 * MS, SpanKind.CLIENT, error=True)
            pay = shop.span("payment", "charge", charge, s + 7 * MS, s + 69 * MS, SpanKind.SERVER, error=True)
            shop.span("payment", "INSERT orders", pay, s + 8 * MS, s + 60 * MS, SpanKind.CLIENT, error=True,
                      attributes={"db.system": "postgresql", "peer.service": "orders-db",
                                  "server.address": "orders-db.internal"})
            # error=true with status OK is not an error: must not become a root cause
            shop.span("payment", "audit", pay, s + 61 * MS, s + 62 * MS, SpanKind.INTERNAL,
                      attributes={"error": True}, ok=True)
        shop.export(f"127.0.0.1:{grpc_port}")

        wait_for(lambda: len(capture.at("/pd")) >= 1, timeout=30)
        wait_for(lambda: any(b.get("event_action") == "resolve" for b in capture.at("/pd")), timeout=30)
        assert col.metric("tracetriage_root_causes_total", service="orders-db", team="data") == 50
        assert col.terminate() == 0
        pages = capture.at("/pd")
        triggers = [b for b in pages if b["event_action"] == "trigger"]
        resolves = [b for b in pages if b["event_action"] == "resolve"]
        assert len(triggers) == 1, pages  # 50 failing requests, one incident
        page = triggers[0]
        data_team_key = "3e7a9c1b5d2f4a6c8e0b1d3f5a7c9e2b"  # the data team's key in configs/catalog
        assert page["routing_key"] == data_team_key
        text = json.dumps(page)
        for hop in ("frontend:place_order", "checkout:POST /checkout", "payment:charge", "payment:INSERT orders"):
            assert hop in text, f"{hop} missing from the page's path: {text}"
        assert "orders-db" in page["payload"]["summary"] or "orders-db" in text
        assert resolves and all(r["routing_key"] == data_team_key for r in resolves)
        assert resolves[0]["dedup_key"] == page["dedup_key"]
        assert capture.at("/web") == []  # the signal's team (web) is not paged

        kept = exported(out)
        assert len(kept) == 50
        for spans in kept.values():
            signal = next(s for s in spans if s.name == "place_order")
            attrs = {kv.key: kv.value for kv in signal.attributes}
            assert attrs["rootcause.service"].string_value == "orders-db"
            assert attrs["rootcause.depth"].int_value == 5
            assert [v.string_value for v in attrs["rootcause.path"].array_value.values][-1] == "payment:INSERT orders"
    finally:
        capture.close()
