"""End to end through the CLI: the OpenTelemetry SDK's OTLP exporters -> collector subprocess -> file exporter.

The file must hold every span unchanged: ids, parents, names, kinds, times, attributes of every value type,
events, links, status, resource and scope. /metrics must count what was sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from collector.otlpjson import decode_request
from tests.conftest import free_port, wait_for


def make_spans(service: str, n_traces: int = 5) -> list[ReadableSpan]:
    """Spans with every attribute value type, events, links, every kind and both error statuses."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": service, "service.version": "1.2.3", "host.cores": 2, "deployment.canary": True,
        "ratio": 0.25, "regions": ("eu", "us"),
    }))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e.tracer", "0.9", schema_url="https://opentelemetry.io/schemas/1.21.0",
                                 attributes={"scope.attr": "yes"})
    kinds = list(SpanKind)
    for t in range(n_traces):
        with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes={
            "str": "v", "int": -(2**62), "float": 3.5, "bool": False,
            "strs": ("a", "b"), "ints": (1, 2, 3), "floats": (0.5, 1.5), "bools": (True, False),
        }) as root:
            root.add_event("started", {"attempt": t, "ok": True})
            for i, kind in enumerate(kinds):
                with tracer.start_as_current_span(
                    f"child-{i}", kind=kind, links=[Link(root.get_span_context(), {"link.kind": "parent"})],
                ) as child:
                    child.set_attribute("http.response.status_code", 200 + i)
                    if i == 1:
                        child.set_status(Status(StatusCode.ERROR, "boom"))
                        child.record_exception(ValueError("bad value"))
                    elif i == 2:
                        child.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def read_output(path: Path) -> list[ExportTraceServiceRequest]:
    return [decode_request(line.encode()) for line in path.read_text().splitlines() if line.strip()]


def index_spans(requests: list[ExportTraceServiceRequest]) -> dict[bytes, tuple[bytes, bytes, bytes]]:
    """span id -> (resource bytes, scope bytes incl. schema url, span bytes)."""
    out = {}
    for req in requests:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out[span.span_id] = (rs.resource.SerializeToString(deterministic=True),
                                         ss.scope.SerializeToString(deterministic=True) + ss.schema_url.encode(),
                                         span.SerializeToString(deterministic=True))
    return out


def write_config(tmp_path: Path, grpc_port: int, http_port: int, metrics_port: int, out: Path) -> Path:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
      http: {{endpoint: "127.0.0.1:{http_port}"}}
processors:
  batch: {{timeout: 50ms}}
exporters:
  file: {{path: "{out}"}}
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
""")
    return cfg


@pytest.mark.timeout(60)
def test_sdk_grpc_and_http_spans_arrive_unchanged(tmp_path: Path, collector_factory) -> None:
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    out = tmp_path / "spans.jsonl"
    col = collector_factory([write_config(tmp_path, grpc_port, http_port, metrics_port, out)], metrics_port)
    col.wait_ready()

    grpc_spans = make_spans("svc-grpc")
    http_spans = make_spans("svc-http")
    grpc_exp = GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    http_exp = HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
    try:
        assert grpc_exp.export(grpc_spans) is SpanExportResult.SUCCESS
        assert http_exp.export(http_spans) is SpanExportResult.SUCCESS
    finally:
        grpc_exp.shutdown()
        http_exp.shutdown()

    expected = index_spans([encode_spans(grpc_spans), encode_spans(http_spans)])
    total = len(grpc_spans) + len(http_spans)
    wait_for(lambda: out.exists() and len(index_spans(read_output(out))) == total, timeout=10)
    got = index_spans(read_output(out))
    assert set(got) == set(expected)
    for span_id, want in expected.items():
        assert got[span_id] == want, f"span {span_id.hex()} changed on the way"

    # /metrics counts what was sent, per transport.
    assert col.metric("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="grpc") == len(grpc_spans)
    assert col.metric("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="http") == len(http_spans)
    assert col.metric("otelcol_receiver_refused_spans_total") == 0
    assert col.metric("otelcol_processor_incoming_items_total", processor="batch") == total
    assert col.metric("otelcol_processor_outgoing_items_total", processor="batch") == total
    assert col.metric("otelcol_exporter_sent_spans_total", exporter="file") == total
    assert col.terminate() == 0
    assert "Shutdown complete" in col.stderr


def test_file_output_is_otlp_json_with_hex_ids(tmp_path: Path, collector_factory) -> None:
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    out = tmp_path / "spans.jsonl"
    col = collector_factory([write_config(tmp_path, grpc_port, http_port, metrics_port, out)], metrics_port)
    col.wait_ready()
    spans = make_spans("svc", n_traces=1)
    exp = HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
    try:
        assert exp.export(spans) is SpanExportResult.SUCCESS
    finally:
        exp.shutdown()
    wait_for(lambda: out.exists() and out.read_text().strip() != "")
    assert col.terminate() == 0
    line = json.loads(out.read_text().splitlines()[0])
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16)
    assert len(span["spanId"]) == 16
    assert isinstance(span["kind"], int)
