"""Dependencies kept in the catalog, end to end: the OpenTelemetry SDK -> a collector with servicegraph and an
ownership extension -> ``GET /catalog/dependencies`` (Backstage entity YAML) -> ``tracetriage catalog diff``
finds a planted undeclared dependency, a planted unowned service and a stale declared one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from pipelines.ownership import parse_catalog
from tests.conftest import ROOT, free_port, wait_for
from tests.pipelines.servicegraph.shop import shop_traces

# orders calls inventory but does not declare it (planted); inventory has no Component (planted); frontend
# declares a billing dependency no trace shows.
DRIFTING = """
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: frontend}
spec: {type: service, lifecycle: production, owner: group:web, dependsOn: [component:orders, component:billing]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: orders}
spec: {type: service, lifecycle: production, owner: group:checkout}
"""
IN_SYNC = """
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: frontend}
spec: {type: service, lifecycle: production, owner: group:web, dependsOn: [component:orders]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: orders}
spec: {type: service, lifecycle: production, owner: group:checkout, dependsOn: ["component:default/inventory"]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: inventory}
spec: {type: service, lifecycle: production, owner: group:stock, dependsOn: [resource:stockdb, resource:redis]}
"""


STALE_AFTER = 8  # seconds: long enough for the diff command to start within it of the last call


def observed(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog/dependencies?format=json", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
    return data


def diff(cfg: Path, catalog: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", "catalog", "diff", "--config", str(cfg),
                           "--catalog", str(catalog), *extra], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_dependencies_endpoint_and_catalog_diff(tmp_path: Path, collector_factory) -> None:
    (tmp_path / "drifting").mkdir()
    (tmp_path / "drifting" / "catalog.yaml").write_text(DRIFTING)
    (tmp_path / "in-sync.yaml").write_text(IN_SYNC)
    grpc_port, metrics_port, graph_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}}}}}
processors:
  servicegraph:
    endpoint: "127.0.0.1:{graph_port}"
    store: {{ttl: 200ms}}
    store_expiration_loop: 100ms
  tail_sampling:
    decision_wait: 200ms
    policies: [{{name: all, type: always_sample}}]
exporters:
  debug: {{}}
extensions:
  ownership: {{catalog: ["{tmp_path}/drifting/*.yaml"]}}
service:
  extensions: [ownership]
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [servicegraph, tail_sampling], exporters: [debug]}}
""")
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    ready = time.monotonic()
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    assert exporter.export(shop_traces(5)) is SpanExportResult.SUCCESS
    wait_for(lambda: col.metric("tracetriage_servicegraph_waiting_edges") == 0
             and col.metric("tracetriage_servicegraph_expired_edges_total") > 0, timeout=10)
    wait_for(lambda: col.metric("tracetriage_ownership_unowned_services") == 1, timeout=10)  # inventory

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/catalog/dependencies", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("application/yaml")
        text = r.read().decode()
    docs = list(yaml.safe_load_all(text))
    for doc in docs:
        assert doc["apiVersion"] == "backstage.io/v1alpha1" and doc["kind"] == "Component"
        assert {"type", "lifecycle", "owner", "dependsOn"} <= set(doc["spec"])
    assert {d["metadata"]["name"]: d["spec"]["dependsOn"] for d in docs} == {
        "frontend": ["component:orders"],
        "orders": ["component:inventory"],
        "inventory": ["resource:redis", "resource:stockdb"],  # a database edge and a virtual node
    }
    assert {d["metadata"]["name"]: d["spec"]["owner"] for d in docs}["orders"] == "group:checkout"
    loaded = parse_catalog(text, "dependencies.yaml")  # the catalog reader takes it as it takes catalog files
    assert not loaded.problems
    assert {c.name: c.depends_on for c in loaded.components}["inventory"] == ("resource:redis", "resource:stockdb")

    # Watch for longer than --stale-after below, then call orders again: billing is stale, orders is not.
    time.sleep(max(0.0, STALE_AFTER + 0.5 - (time.monotonic() - ready)))
    before = observed(metrics_port)["components"]["frontend"]["component:orders"]
    try:
        assert exporter.export(shop_traces(1)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    wait_for(lambda: observed(metrics_port)["components"]["frontend"]["component:orders"] > before, timeout=10)
    r = diff(cfg, tmp_path / "drifting" / "*.yaml", "--stale-after", f"{STALE_AFTER}s")
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert "undeclared dependencies (seen in traces, not in spec.dependsOn): 1\n  orders -> component:inventory" in out
    assert f"stale dependencies (declared, not seen for {STALE_AFTER}s): 1\n  frontend -> component:billing " \
           "(never seen)" in out
    assert "unowned services (seen in traces, no catalog Component): 1\n  inventory\n" in out
    # With the default 7 days, a collector watching for seconds has not yet seen billing: no stale drift.
    r = diff(cfg, tmp_path / "drifting" / "*.yaml")
    assert r.returncode == 1 and "stale dependencies (declared, not seen for 7.0d): 0" in r.stdout
    assert "declared, not seen yet (watching for less than 7.0d): 1\n  frontend -> component:billing" in r.stdout
    # A catalog that declares what traces show: no drift.
    r = diff(cfg, tmp_path / "in-sync.yaml", "--stale-after", "1h")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "undeclared dependencies (seen in traces, not in spec.dependsOn): 0" in r.stdout
    assert col.terminate() == 0


def test_catalog_diff_errors_name_the_problem(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{free_port()}"}}}}}}}}
exporters: {{debug: {{}}}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:{port}"}}}}
  pipelines: {{traces: {{receivers: [otlp], exporters: [debug]}}}}
""")
    (tmp_path / "c.yaml").write_text(IN_SYNC)
    r = diff(cfg, tmp_path / "nothing-*.yaml")
    assert r.returncode == 2 and "--catalog" in r.stderr and "no file matches" in r.stderr
    r = diff(cfg, tmp_path / "c.yaml")
    assert r.returncode == 2 and f"127.0.0.1:{port}/catalog/dependencies: no answer from a running collector" \
        in r.stderr
    r = diff(cfg, tmp_path / "c.yaml", "--stale-after", "soon")
    assert r.returncode == 2 and "soon" in r.stderr
