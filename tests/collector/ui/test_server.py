"""The status page's JSON API and HTML over real HTTP, from the collector as users run it (the CLI in a
subprocess, the OpenTelemetry SDK sending over OTLP gRPC): root_cause -> slo -> alert_routing ->
tail_sampling. Every panel's endpoint shows what the traffic did; secrets in the receivers' config never
appear; bad requests get a clear error; ``tracetriage status`` prints the same summary."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from tests.conftest import ROOT, free_port, wait_for
from tests.e2e.test_triage import MS, T0, Capture, Shop
from tests.pipelines.slo.helpers import slo_doc

WEBHOOK_TOKEN = "T0KEN-SECRET-7f3a"  # made-up secrets that must never show
PD_KEY = "PDKEY-SECRET-91c2"


def config(tmp_path: Path, grpc_port: int, ui_port: int, hook: str) -> Path:
    catalog = ROOT / "configs" / "catalog"
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
  root_cause:
    decision_wait: 500ms
  slo:
    evaluation_interval: 200ms
    burn_alerts: [{{severity: page, burn_rate: 10, long_window: 2m, short_window: 1m}}]
    slos: [{json.dumps(slo_doc("checkout"))}]
  alert_routing:
    trigger: both
    ownership: {{catalog: ["{catalog}/*.yaml"]}}
    group_wait: 200ms
    group_interval: 200ms
    route:
      receiver: chat
      routes:
        - {{matchers: ['team="data"'], receiver: data-pager}}
    receivers:
      - {{name: chat, webhook: {{url: "{hook}/hooks/{WEBHOOK_TOKEN}"}}}}
      - {{name: data-pager, pagerduty: {{routing_key: "{PD_KEY}", url: "{hook}/pd", insecure: true}}}}
  tail_sampling:
    decision_wait: 500ms
    policies:
      - {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}
exporters:
  file: {{path: "{tmp_path / 'spans.jsonl'}"}}
service:
  telemetry:
    metrics: {{address: ""}}
    ui: {{endpoint: "127.0.0.1:{ui_port}", refresh: 7s}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [root_cause, slo, alert_routing, tail_sampling]
      exporters: [file]
""")
    return cfg


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def api(base: str, path: str) -> Any:
    status, body = get(base + path)
    assert status == 200, (path, status, body)
    return json.loads(body)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One collector with the whole pipeline and its status page, after 50 checkouts of which 10 failed in
    the orders database (their trace ids are returned)."""
    from tests.conftest import CollectorProcess

    tmp = tmp_path_factory.mktemp("status")
    capture = Capture()
    grpc_port, ui_port = free_port(), free_port()
    col = CollectorProcess([config(tmp, grpc_port, ui_port, capture.url)], tmp)
    try:
        col.wait_ready()
        shop = Shop()
        failed: list[str] = []
        for i in range(50):
            fail = i % 5 == 0
            s = T0 + i * 100 * MS
            root = shop.span("frontend", "POST /checkout", None, s, s + 90 * MS, SpanKind.SERVER, error=fail)
            order = shop.span("frontend", "place_order", root, s + MS, s + 85 * MS, SpanKind.INTERNAL, error=fail)
            co = shop.span("checkout", "PlaceOrder", order, s + 2 * MS, s + 80 * MS, SpanKind.SERVER, error=fail)
            shop.span("checkout", "INSERT orders", co, s + 3 * MS, s + 70 * MS, SpanKind.CLIENT, error=fail,
                      attributes={"db.system": "postgresql", "peer.service": "orders-db"})
            if fail:
                failed.append(f"{root.get_span_context().trace_id:032x}")
        shop.export(f"127.0.0.1:{grpc_port}")
        base = f"http://127.0.0.1:{ui_port}"
        wait_for(lambda: api(base, "/api/v1/alerts")["processors"][0]["open_groups"] >= 1
                 and api(base, "/api/v1/sampling")["processors"][0]["decisions"]["5m"]["sampled"] == 10
                 and api(base, "/api/v1/pipelines")["rate_window"] is not None, timeout=30)
        wait_for(lambda: len(capture.posts) >= 1, timeout=15)
        yield base, failed, col
    finally:
        col.stop()
        capture.close()


def test_pipelines_show_every_box_with_counts_and_rates(running: Any) -> None:
    base, _, _ = running
    data = api(base, "/api/v1/pipelines")
    assert data["rate_window"] >= 2.0
    (p,) = data["pipelines"]
    assert p["id"] == "traces"
    (r,) = p["receivers"]
    assert (r["id"], r["accepted"], r["refused"]) == ("otlp", 200, 0)
    assert r["accepted_rate"] is not None
    kinds = [(s["kind"], s["id"]) for s in p["stages"]]
    assert kinds == [("buffer", "tail_sampling"), ("processor", "root_cause"), ("processor", "slo"),
                     ("processor", "alert_routing"), ("processor", "tail_sampling")]
    buffer = p["stages"][0]
    assert buffer["stages"] == ["root_cause", "slo", "alert_routing", "tail_sampling"]
    assert (buffer["traces"], buffer["spans"], buffer["bytes"]) == (0, 0, 0)  # every trace decided by now
    assert buffer["oldest_trace_age"] is None
    assert buffer["overflow_decisions"] == 0 and buffer["num_traces"] == 50000
    sampling = p["stages"][4]
    assert (sampling["incoming"], sampling["outgoing"]) == (200, 40)  # the 10 failed traces of 4 spans kept
    (e,) = p["exporters"]
    assert e["id"] == "file" and e["sent"] == 40 and e["failed"] == 0


def test_sampling_counts_kept_and_dropped_per_policy(running: Any) -> None:
    base, _, _ = running
    (proc,) = api(base, "/api/v1/sampling")["processors"]
    assert proc["id"] == "tail_sampling" and proc["pipeline"] == "traces"
    for window in ("5m", "1h"):
        assert proc["decisions"][window] == {"sampled": 10, "not_sampled": 40, "dropped": 0}
        (policy,) = proc["policies"]
        assert policy["policy"] == "errors"
        assert policy[window] == {"sampled": 10, "not_sampled": 40, "dropped": 0}


def test_root_causes_name_the_service_and_span_with_an_example_trace(running: Any) -> None:
    base, failed, _ = running
    (proc,) = api(base, "/api/v1/rootcauses")["processors"]
    assert proc["total"] == 10
    (cause,) = proc["causes"]
    assert (cause["service"], cause["span_name"], cause["kind"], cause["count"]) == (
        "orders-db", "INSERT orders", "error", 10)
    assert cause["team"] == "unknown"  # root_cause has no ownership of its own in this config
    assert cause["example_trace_id"] in failed
    assert proc["services"][0]["service"] == "orders-db" and proc["services"][0]["count"] == 10


def test_alerts_show_groups_receivers_and_no_secret(running: Any) -> None:
    base, _, _ = running
    status, body = get(base + "/api/v1/alerts")
    assert status == 200
    assert WEBHOOK_TOKEN not in body and PD_KEY not in body
    (proc,) = json.loads(body)["processors"]
    assert proc["trigger"] == "both" and proc["open_groups"] >= 1 and proc["max_groups"] == 10000
    data = [g for g in proc["groups"] if g["team"] == "data"]
    assert data and all(g["receiver"] == "data-pager" and g["service"] == "orders-db" for g in data)
    # The failures' group (10 failed checkouts) and the objective's burn (held while it burns).
    failures = next(g for g in data if not g["held"])
    assert failures["failures"] == 10 and failures["resolves_in"] is not None
    assert any(g["held"] and g["slo"] == "checkout" for g in data)
    assert failures["last_page_ago"] is not None and failures["next_repeat_in"] > 0
    receivers = {r["name"]: r for r in proc["receivers"]}
    assert receivers["chat"]["destination"].endswith("/[REDACTED]")
    assert receivers["data-pager"]["routing_key"] == "[REDACTED]"
    assert receivers["data-pager"]["sent"] >= 1
    assert proc["silences"] == {"active": 0, "pending": 0, "in_force": []}
    assert json.loads(get(base + "/api/v1/alerts?limit=0")[1])["processors"][0]["groups"] == []


def test_slos_show_budget_burn_history_and_dominant_cause(running: Any) -> None:
    base, _, _ = running
    (proc,) = api(base, "/api/v1/slos")["processors"]
    (o,) = proc["objectives"]
    assert o["name"] == "checkout" and o["target"] == 0.999
    assert o["budget_remaining"] == pytest.approx(1 - 10 / (0.001 * 50))
    assert o["burn_rates"]["1m"] == pytest.approx(200)
    assert o["dominant_cause"] == "orders-db" and o["cause_window"] == "2m"
    assert o["alerts"][0]["firing"] is True
    assert len(o["history"]) >= 2 and set(o["history"][-1][1]) >= {"1m", "2m"}


def test_everything_at_once_and_bad_requests(running: Any) -> None:
    base, failed, _ = running
    everything = api(base, "/api/v1/status")
    assert set(everything) == {"about", "pipelines", "sampling", "rootcauses", "alerts", "slos"}
    assert everything["about"]["trace_lookup"] is False
    status, body = get(base + f"/api/v1/traces/{failed[0]}")
    assert status == 503 and json.loads(body) == {"error": "trace lookup needs service.telemetry.debug"}
    status, body = get(base + "/api/v1/traces/xyz")
    assert status == 400 and "32 hex digits" in json.loads(body)["error"]
    status, body = get(base + "/api/v1/alerts?limit=lots")
    assert status == 400 and "limit must be a whole number" in json.loads(body)["error"]
    status, body = get(base + "/api/v1/alerts?limit=10001")
    assert status == 400
    status, body = get(base + "/api/v1/nothing")
    assert status == 404 and "/api/v1/pipelines" in json.loads(body)["error"]


def test_the_page_and_its_views(running: Any) -> None:
    base, failed, _ = running
    status, html = get(base + "/")
    assert status == 200
    assert '<meta http-equiv="refresh" content="7">' in html
    for panel in ("pipelines", "buffers", "sampling", "rootcauses", "alerts", "slos", "lookup"):
        assert f'<section id="{panel}">' in html
    assert "<script" not in html and "http://" not in html.replace(base, "").split("<body>")[0]
    assert WEBHOOK_TOKEN not in html and PD_KEY not in html
    assert html.count('<svg class="pipeline"') == 1 and '<svg class="chart"' in html
    assert f'href="/lookup?trace_id={failed[0]}"' in html or any(f"trace_id={t}" in html for t in failed)
    status, view = get(base + "/view/alerts")
    assert status == 200 and '<section id="alerts">' in view and '<section id="slos">' not in view
    assert get(base + "/view/nothing")[0] == 404
    status, lookup = get(base + f"/lookup?trace_id={failed[0]}")
    assert status == 200 and "trace lookup needs service.telemetry.debug" in lookup
    assert 'http-equiv="refresh"' not in lookup  # a lookup's answer stays on screen


def test_tracetriage_status_prints_the_summary(running: Any) -> None:
    base, _, _ = running
    r = subprocess.run([sys.executable, "-m", "collector", "status", "--endpoint", base], capture_output=True,
                       text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "pipeline traces:" in out and "receiver otlp: in " in out
    assert "trace buffer (root_cause, slo, alert_routing, tail_sampling): 0 traces" in out
    assert "last 5m: kept 10, not kept 40, dropped 0; by policy: errors 10" in out
    assert "root causes (root_cause, traces): orders-db:INSERT orders 10" in out
    assert "team data, receiver data-pager" in out
    assert "SLO checkout: budget left" in out and "dominant cause orders-db, FIRING page 2m/1m" in out
    assert WEBHOOK_TOKEN not in out and PD_KEY not in out
    r = subprocess.run([sys.executable, "-m", "collector", "status", "--endpoint", base, "--json"],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 0 and json.loads(r.stdout)["rootcauses"]["processors"][0]["total"] == 10


def test_tracetriage_status_says_when_nothing_answers() -> None:
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "collector", "status", "--endpoint", f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 1
    assert f"http://127.0.0.1:{port}/api/v1/status?limit=10: cannot connect" in r.stderr
    assert "service.telemetry.ui" in r.stderr
    r = subprocess.run([sys.executable, "-m", "collector", "status", "--endpoint", "ftp://x"],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 1 and "give host:port or an http(s) URL" in r.stderr
