"""The collector as users run it (the CLI in a subprocess), the OpenTelemetry SDK as the client over OTLP
gRPC: root_cause -> slo -> alert_routing with ``trigger: slo``. Failing checkouts burn the objective; the
page goes to the team that owns the database at the root cause (the Backstage catalog in configs/), not
to the checkout's; /metrics shows the measurement; a restart keeps it (file_storage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from opentelemetry.trace import SpanKind

from tests.conftest import ROOT, free_port, wait_for
from tests.e2e.test_triage import MS, T0, Capture, Shop
from tests.pipelines.slo.helpers import slo_doc


def config(tmp_path: Path, grpc_port: int, metrics_port: int, hook: str) -> Path:
    catalog = ROOT / "configs" / "catalog"
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
extensions:
  file_storage: {{directory: "{state}"}}
processors:
  root_cause:
    decision_wait: 500ms
  slo:
    storage: file_storage
    evaluation_interval: 200ms
    burn_alerts: [{{severity: page, burn_rate: 10, long_window: 2m, short_window: 1m}}]
    slos: [{json.dumps(slo_doc("checkout"))}]
  alert_routing:
    trigger: slo
    ownership: {{catalog: ["{catalog}/*.yaml"]}}
    group_wait: 200ms
    group_interval: 200ms
    route:
      receiver: default
      routes:
        - {{matchers: ['team="data"'], receiver: data}}
    receivers:
      - {{name: default, webhook: {{url: "{hook}/default"}}}}
      - {{name: data, webhook: {{url: "{hook}/data"}}}}
exporters:
  debug: {{}}
service:
  extensions: [file_storage]
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [root_cause, slo, alert_routing]
      exporters: [debug]
""")
    return cfg


@pytest.mark.timeout(120)
def test_failing_checkouts_page_the_database_owners_through_the_slo(tmp_path: Path, collector_factory) -> None:
    capture = Capture()
    try:
        grpc_port, metrics_port = free_port(), free_port()
        cfg = config(tmp_path, grpc_port, metrics_port, capture.url)
        col = collector_factory([cfg], metrics_port)
        col.wait_ready()
        shop = Shop()
        for i in range(50):
            fail = i % 5 == 0  # 10 of 50 checkouts fail in the orders database: 20 %, 200x the 0.1 % budget
            s = T0 + i * 100 * MS
            root = shop.span("frontend", "POST /checkout", None, s, s + 90 * MS, SpanKind.SERVER, error=fail)
            order = shop.span("frontend", "place_order", root, s + MS, s + 85 * MS, SpanKind.INTERNAL, error=fail)
            co = shop.span("checkout", "PlaceOrder", order, s + 2 * MS, s + 80 * MS, SpanKind.SERVER, error=fail)
            shop.span("checkout", "INSERT orders", co, s + 3 * MS, s + 70 * MS, SpanKind.CLIENT, error=fail,
                      attributes={"db.system": "postgresql", "peer.service": "orders-db"})
        shop.export(f"127.0.0.1:{grpc_port}")

        wait_for(lambda: len(capture.at("/data")) >= 1, timeout=30)
        page = capture.at("/data")[0]
        alert = page["alerts"][0]
        assert alert["labels"] == {"alertname": "SLOBurn", "slo": "checkout", "team": "data", "service": "orders-db",
                                   "severity": "page", "long_window": "2m", "short_window": "1m"}
        assert alert["annotations"]["causes"].startswith("orders-db 100% (traces ")
        assert "checkout:INSERT orders" in alert["annotations"]["path"]
        assert capture.at("/default") == []  # the checkout's own team (web) is not paged
        assert col.metric("tracetriage_slo_events_total", slo="checkout", outcome="bad") == 10
        assert col.metric("tracetriage_slo_events_total", slo="checkout", outcome="good") == 40
        assert col.metric("tracetriage_slo_burn_rate", slo="checkout", window="1m") == pytest.approx(200)
        budget = col.metric("tracetriage_slo_error_budget_remaining", slo="checkout")
        assert budget == pytest.approx(1 - 10 / (0.001 * 50))
        assert col.terminate() == 0
        assert "Traceback" not in col.stderr

        state = json.loads((tmp_path / "state" / "processor_slo" / "state.json").read_text())
        assert sum(b[2] for b in state["objectives"]["checkout"]["series"]["minutes"]) == 10

        again = collector_factory([cfg], metrics_port)  # a restart: the budget is not reset
        again.wait_ready()
        wait_for(lambda: again.metric("tracetriage_slo_error_budget_remaining", slo="checkout") != 0, timeout=10)
        assert again.metric("tracetriage_slo_error_budget_remaining", slo="checkout") == pytest.approx(budget)
        assert again.terminate() == 0
    finally:
        capture.close()


def test_the_shipped_checkout_objectives_load_and_give_rules(tmp_path: Path) -> None:
    from collector.cli import main

    objectives = ROOT / "configs" / "slo" / "checkout.yaml"
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}}}}}}}
processors:
  slo: {{files: ["{objectives}"]}}
exporters: {{debug: {{}}}}
service: {{pipelines: {{traces: {{receivers: [otlp], processors: [slo], exporters: [debug]}}}}}}
""")
    out = tmp_path / "rules.yaml"
    assert main(["slo", "rules", "--config", str(cfg), "-o", str(out)]) == 0
    groups = [g["name"] for g in yaml.safe_load(out.read_text())["spec"]["groups"]]
    assert "tracetriage-slo-checkout-availability-alerts" in groups
    assert "tracetriage-slo-checkout-latency-alerts" in groups
