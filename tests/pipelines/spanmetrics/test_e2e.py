"""End to end through the CLI: the OpenTelemetry SDK -> ``spanmetrics`` before a 10 % tail sampler -> file.

The span metrics count every span sent, per label set, although the sampler drops most traces; every
exemplar in the OpenMetrics exposition names a trace the sampler kept (it is in the exported file)."""

from __future__ import annotations

import collections
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, wait_for
from tests.e2e.test_sdk import read_output
from tests.pipelines.servicegraph.shop import shop_traces

TRACES, FAILING = 300, range(0, 300, 7)


def get(port: int, accept: str = "") -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.headers["Content-Type"], r.read().decode()


@pytest.mark.timeout(90)
def test_counts_every_span_and_exemplars_name_only_kept_traces(tmp_path: Path, collector_factory) -> None:
    grpc_port, metrics_port, port = free_port(), free_port(), free_port()
    out = tmp_path / "spans.jsonl"
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}}}}}
processors:
  spanmetrics:
    endpoint: "127.0.0.1:{port}"
    exemplars: {{enabled: true}}
  tail_sampling:
    decision_wait: 500ms
    policies:
      - {{name: some, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
exporters:
  file: {{path: "{out}"}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [spanmetrics, tail_sampling], exporters: [file]}}
""")
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    spans = shop_traces(TRACES, failing=FAILING)
    expected: collections.Counter[tuple[str, str, str, str]] = collections.Counter(
        (str(s.resource.attributes["service.name"]), s.name, f"SPAN_KIND_{s.kind.name}",
         f"STATUS_CODE_{s.status.status_code.name}") for s in spans)
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    per_trace = len(spans) // TRACES
    try:
        for i in range(0, len(spans), 10 * per_trace):  # ten traces a request
            assert exporter.export(spans[i:i + 10 * per_trace]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    wait_for(lambda: col.metric("otelcol_processor_tail_sampling_sampling_traces_on_memory") == 0
             and col.metric("otelcol_processor_incoming_items_total", processor="tail_sampling") == len(spans),
             timeout=20)
    wait_for(lambda: col.metric("otelcol_exporter_sent_spans_total") > 0 and out.exists(), timeout=10)
    wait_for(lambda: col.metric("tracetriage_exemplars_pending_traces") == 0, timeout=10)
    kept = {span.trace_id.hex() for req in read_output(out) for rs in req.resource_spans
            for ss in rs.scope_spans for span in ss.spans}
    all_ids = {format(s.context.trace_id, "032x") for s in spans}
    assert 0 < len(kept) < len(all_ids) * 0.25, "the 10 % sampler drops most traces"

    # Prometheus text: counts per label set equal the spans sent, not the spans kept.
    content_type, text = get(port)
    assert content_type.startswith("text/plain")
    got = {(s.labels["service_name"], s.labels["span_name"], s.labels["span_kind"], s.labels["status_code"]): s.value
           for f in text_string_to_metric_families(text) for s in f.samples
           if s.name == "traces_span_metrics_calls_total"}
    assert got == {k: float(v) for k, v in expected.items()}
    counts = {(s.labels["service_name"], s.labels["span_name"], s.labels["span_kind"], s.labels["status_code"]): s.value
              for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == "traces_span_metrics_duration_milliseconds_count"}
    assert counts == got

    # OpenMetrics: exemplars, each naming a kept trace.
    content_type, text = get(port, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    exemplars = [s.exemplar for f in openmetrics_families(text) for s in f.samples if s.exemplar is not None]
    assert exemplars, "kept traces leave exemplars"
    linked = {e.labels["trace_id"] for e in exemplars}
    assert linked <= kept, f"exemplars name traces the sampler dropped: {sorted(linked - kept)[:3]}"
    assert col.metric("tracetriage_exemplars_dropped_total", reason="not_sampled") > 0
    assert col.metric("tracetriage_exemplars_written_total") >= len(exemplars)
    assert "traces_span_metrics" not in col.metrics()
    assert col.terminate() == 0
