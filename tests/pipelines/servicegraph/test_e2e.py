"""End to end through the CLI: the OpenTelemetry SDK's OTLP exporter -> collector subprocess with
``servicegraph`` -> the processor's own Prometheus endpoint, scraped as Prometheus would."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, wait_for
from tests.pipelines.servicegraph.shop import shop_traces

N, FAILING = 12, (1, 4, 7)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def edge(client: str, server: str, connection_type: str = "") -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"client": client, "server": server, "connection_type": connection_type}.items()))


Labels = tuple[tuple[str, str], ...]


def samples(got: dict[tuple[str, Labels], float], name: str) -> dict[Labels, float]:
    return {labels: v for (n, labels), v in got.items() if n == name}


@pytest.mark.timeout(60)
def test_shop_topology_gives_exactly_the_expected_edges(tmp_path: Path, collector_factory) -> None:
    grpc_port, metrics_port, graph_port = free_port(), free_port(), free_port()
    out = tmp_path / "spans.jsonl"
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
  servicegraph:
    endpoint: "127.0.0.1:{graph_port}"
    store: {{ttl: 300ms, max_items: 1000}}
    store_expiration_loop: 100ms
    latency_histogram_buckets: [1ms, 10ms, 100ms, 1s]
exporters:
  file: {{path: "{out}"}}
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [servicegraph]
      exporters: [file]
""")
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    spans = shop_traces(N, failing=FAILING)
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()

    # Paired edges count at once; the half-seen ones settle after store.ttl.
    wait_for(lambda: samples(scrape(graph_port), "traces_service_graph_unpaired_spans_total"), timeout=10)
    wait_for(lambda: col.metric("tracetriage_servicegraph_waiting_edges") == 0, timeout=10)
    got = scrape(graph_port)
    totals = samples(got, "traces_service_graph_request_total")
    assert totals == {
        edge("frontend", "orders"): N,
        edge("orders", "inventory"): N,
        edge("inventory", "stockdb", "database"): N,
        edge("inventory", "redis", "virtual_node"): N,  # the uninstrumented cache, named by db.system
        edge("user", "frontend", "virtual_node"): N,  # the root server span: called by a user
    }
    failed = samples(got, "traces_service_graph_request_failed_total")
    assert failed[edge("frontend", "orders")] == len(FAILING)
    assert sum(failed.values()) == len(FAILING)
    # The legacy call has no server and names no peer: unpaired, counted once per trace.
    assert samples(got, "traces_service_graph_unpaired_spans_total") == {edge("frontend", ""): N}
    assert not samples(got, "traces_service_graph_dropped_spans_total")
    # Histograms: the server side is observed for paired edges, the client side for every edge with a client.
    server_counts = samples(got, "traces_service_graph_request_server_seconds_count")
    client_counts = samples(got, "traces_service_graph_request_client_seconds_count")
    assert server_counts[edge("frontend", "orders")] == N
    assert client_counts[edge("frontend", "orders")] == N
    assert server_counts[edge("inventory", "redis", "virtual_node")] == 0
    assert client_counts[edge("user", "frontend", "virtual_node")] == 0
    inf = {labels: v for (n, labels), v in got.items()
           if n == "traces_service_graph_request_server_seconds_bucket" and ("le", "+Inf") in labels}
    assert inf[tuple(sorted({**dict(edge("orders", "inventory")), "le": "+Inf"}.items()))] == N

    # Spans pass through unchanged, and none of these series is on the collector's own /metrics.
    wait_for(lambda: col.metric("otelcol_exporter_sent_spans_total") == len(spans))
    assert "traces_service_graph" not in col.metrics()
    assert col.metric("tracetriage_servicegraph_expired_edges_total") == 3 * N  # redis, user, legacy
    assert col.terminate() == 0


@pytest.mark.timeout(60)
def test_unpaired_client_span_expires_and_is_counted(tmp_path: Path, collector_factory) -> None:
    """A lone client span: nothing until store.ttl, then one unpaired span and no edge."""
    grpc_port, metrics_port, graph_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}}}}}
processors:
  servicegraph:
    endpoint: "127.0.0.1:{graph_port}"
    store: {{ttl: 1s}}
    store_expiration_loop: 100ms
exporters:
  debug: {{}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [servicegraph], exporters: [debug]}}
""")
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    lone = [s for s in shop_traces(1) if s.name == "POST /legacy"]
    assert len(lone) == 1
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    try:
        assert exporter.export(lone) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    wait_for(lambda: col.metric("tracetriage_servicegraph_waiting_edges") == 1, timeout=10)
    assert not samples(scrape(graph_port), "traces_service_graph_unpaired_spans_total")  # still waiting
    wait_for(lambda: samples(scrape(graph_port), "traces_service_graph_unpaired_spans_total"), timeout=10)
    got = scrape(graph_port)
    assert samples(got, "traces_service_graph_unpaired_spans_total") == {edge("frontend", ""): 1}
    assert not samples(got, "traces_service_graph_request_total")
    assert col.metric("tracetriage_servicegraph_expired_edges_total") == 1
    assert col.terminate() == 0
