"""Cost per team, end to end through the CLI: the OpenTelemetry SDK -> root_cause (which annotates spans,
changing their bytes) -> a 10 % tail sampler with decision caches -> file. For every team, received = kept +
dropped, in spans and in bytes, late spans included; received spans add up to what was sent."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from tests.conftest import free_port, wait_for
from tests.pipelines.servicegraph.shop import shop_traces

CATALOG = """
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: frontend}
spec: {type: service, owner: group:web}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: orders}
spec: {type: service, owner: group:checkout}
"""


def late_spans(trace_ids: list[int]) -> list[ReadableSpan]:
    """One more inventory span in each of these (already decided) traces."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "inventory"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("late")
    for tid in trace_ids:
        parent = NonRecordingSpan(SpanContext(tid, random.getrandbits(64) | 1, True, TraceFlags(1)))
        with tracer.start_as_current_span("retry", kind=SpanKind.INTERNAL,
                                          context=trace.set_span_in_context(parent)):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def team_counts(col, metric: str) -> dict[tuple[str, str], float]:
    out = {}
    for line in col.metrics().splitlines():
        if line.startswith(metric + "{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            out[(labels["team"].strip('"'), labels["outcome"].strip('"'))] = float(line.rsplit(" ", 1)[1])
    return out


@pytest.mark.timeout(90)
def test_team_cost_counters_add_up(tmp_path: Path, collector_factory) -> None:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    grpc_port, metrics_port = free_port(), free_port()
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}}}}}
processors:
  root_cause: {{ownership: ownership}}
  tail_sampling:
    decision_wait: 300ms
    decision_cache: {{sampled_cache_size: 1000, non_sampled_cache_size: 1000}}
    policies:
      - {{name: some, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
exporters:
  file: {{path: "{tmp_path / 'out.jsonl'}"}}
extensions:
  ownership: {{catalog: ["{tmp_path}/catalog.yaml"], default_team: sre}}
service:
  extensions: [ownership]
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [root_cause, tail_sampling], exporters: [file]}}
""")
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    spans = shop_traces(200, failing=range(0, 200, 9))
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        wait_for(lambda: col.metric("otelcol_processor_tail_sampling_sampling_traces_on_memory") == 0
                 and col.metric("tracetriage_team_spans_total", outcome="received") == len(spans), timeout=20)
        wait_for(lambda: col.metric("otelcol_processor_incoming_items_total", processor="tail_sampling")
                 == len(spans), timeout=20)
        # Late spans of decided traces follow the cached decisions (kept or dropped at once).
        late = late_spans(sorted({s.context.trace_id for s in spans})[:50])
        assert exporter.export(late) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    total = len(spans) + len(late)
    wait_for(lambda: col.metric("tracetriage_team_spans_total", outcome="received") == total, timeout=20)
    wait_for(lambda: col.metric("otelcol_processor_tail_sampling_sampling_traces_on_memory") == 0, timeout=20)
    assert col.metric("otelcol_processor_tail_sampling_early_releases_from_cache_decision_total") \
        + col.metric("tracetriage_trace_buffer_late_spans_dropped_total") == len(late)

    spans_by = team_counts(col, "tracetriage_team_spans_total")
    bytes_by = team_counts(col, "tracetriage_team_bytes_total")
    teams = {team for team, _ in spans_by}
    # frontend -> web and orders -> checkout from the catalog; inventory is unowned: default_team.
    assert teams == {"web", "checkout", "sre"}
    for team in teams:
        for counts in (spans_by, bytes_by):
            received = counts[(team, "received")]
            assert received > 0
            assert received == counts.get((team, "kept"), 0) + counts.get((team, "dropped"), 0), (team, counts)
    expected = {"web": sum(1 for s in spans if s.resource.attributes["service.name"] == "frontend"),
                "checkout": sum(1 for s in spans if s.resource.attributes["service.name"] == "orders")}
    expected["sre"] = len(spans) + len(late) - expected["web"] - expected["checkout"]
    assert {t: spans_by[(t, "received")] for t in teams} == expected
    assert sum(spans_by.get((t, "dropped"), 0) for t in teams) > sum(spans_by.get((t, "kept"), 0) for t in teams)
    assert sum(spans_by.get((t, "kept"), 0) for t in teams) > 0
    assert col.metric("tracetriage_ownership_unowned_services") == 1  # inventory
    assert col.terminate() == 0
