"""The collector as users run it, with its backend down: SIGTERM says once, correctly, what stays on disk
(persistent queue) and what is lost (in-memory queue), does not sit out the shutdown timeout for a persistent
queue whose circuit is open, and what stayed on disk is exported after a restart with the backend up. A
persistent queue that cannot be written answers clients without its file path and turns health to 503."""

from __future__ import annotations

import re
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.conftest import free_port, wait_for
from tests.e2e.test_sdk import make_spans

PERSISTED = "stay in the persistent queue on disk and will be sent after a restart"
LOST = "were held in memory and are lost"


class Backend:
    """A real OTLP/gRPC TraceService (grpc's threaded server) that records the span ids it receives."""

    def __init__(self, port: int) -> None:
        self.span_ids: set[bytes] = set()
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(
                self._export, request_deserializer=ExportTraceServiceRequest.FromString,
                response_serializer=ExportTraceServiceResponse.SerializeToString)},
        )
        self.server.add_generic_rpc_handlers((handler,))
        assert self.server.add_insecure_port(f"127.0.0.1:{port}") == port

    def _export(self, request: ExportTraceServiceRequest, context: object) -> ExportTraceServiceResponse:
        with self._lock:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    self.span_ids.update(s.span_id for s in ss.spans)
        return ExportTraceServiceResponse()

    def count(self) -> int:
        with self._lock:
            return len(self.span_ids)


@contextmanager
def backend(port: int) -> Iterator[Backend]:
    b = Backend(port)
    b.server.start()
    try:
        yield b
    finally:
        b.server.stop(None)


def write_config(tmp_path: Path, *, grpc_port: int, http_port: int, metrics_port: int, health_port: int,
                 backend_port: int, persistent: bool, shutdown_timeout: str) -> Path:
    queue = "{storage: file_storage, num_consumers: 2}" if persistent else "{num_consumers: 2}"
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
      http: {{endpoint: "127.0.0.1:{http_port}"}}
exporters:
  otlp:
    endpoint: "127.0.0.1:{backend_port}"
    tls: {{insecure: true}}
    timeout: 2s
    sending_queue: {queue}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 100ms, max_elapsed_time: 10m}}
    circuit_breaker: {{failure_threshold: 2, open_duration: 1m}}
extensions:
  file_storage: {{directory: "{tmp_path / 'state'}", create_directory: true}}
  health_check: {{endpoint: "127.0.0.1:{health_port}"}}
service:
  shutdown_timeout: {shutdown_timeout}
  extensions: [file_storage, health_check]
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
""")
    return cfg


def health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.timeout(120)
def test_sigterm_with_backend_down_keeps_the_persistent_queue_and_sends_it_after_restart(
        tmp_path: Path, collector_factory) -> None:
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port(),
             "health_port": free_port(), "backend_port": free_port()}
    # A shutdown timeout far above what the test waits for SIGTERM: shutdown must not sit it out.
    config = write_config(tmp_path, **ports, persistent=True, shutdown_timeout="5m")
    col = collector_factory([config], ports["metrics_port"])
    col.wait_ready()
    spans = make_spans("svc-down", n_traces=4)
    exporter = GrpcExporter(endpoint=f"127.0.0.1:{ports['grpc_port']}", insecure=True)
    try:
        for i in range(0, len(spans), 7):
            assert exporter.export(spans[i:i + 7]) is SpanExportResult.SUCCESS  # acknowledged once on disk
    finally:
        exporter.shutdown()
    wait_for(lambda: col.metric("tracetriage_exporter_circuit_state", exporter="otlp") == 1, timeout=20)
    queue_dir = tmp_path / "state" / "exporter_otlp"
    on_disk = sorted(queue_dir.glob("*.batch"))
    assert len(on_disk) == (len(spans) + 6) // 7

    assert col.terminate(timeout=30) == 0
    log = col.stderr
    assert log.count(PERSISTED) == 1, log
    assert "not waiting: its circuit is open, the destination is down" in log
    queued, in_flight = (int(x) for x in re.search(r"(\d+) spans queued \(\d+ batches\) and (\d+) in flight "
                                                   + re.escape(PERSISTED), log).groups())  # type: ignore[union-attr]
    assert queued + in_flight == len(spans)
    assert LOST not in log and "is lost" not in log and "dropped" not in log, log
    assert "did not finish shutting down" not in log, log
    assert sorted(queue_dir.glob("*.batch")) == on_disk  # still there, every one

    with backend(ports["backend_port"]) as b:
        col2 = collector_factory([config], ports["metrics_port"])
        col2.wait_ready()
        wait_for(lambda: b.count() == len(spans), timeout=30)
        assert b.span_ids == {s.context.span_id.to_bytes(8, "big") for s in spans}
        wait_for(lambda: not list(queue_dir.glob("*.batch")), timeout=10)
        assert col2.metric("otelcol_exporter_sent_spans_total", exporter="otlp") == len(spans)
        assert col2.terminate(timeout=30) == 0
    assert "left by the previous run will be sent first" in col2.stderr
    assert PERSISTED not in col2.stderr


@pytest.mark.timeout(120)
def test_sigterm_with_backend_down_and_memory_queue_says_once_what_is_lost(
        tmp_path: Path, collector_factory) -> None:
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port(),
             "health_port": free_port(), "backend_port": free_port()}
    config = write_config(tmp_path, **ports, persistent=False, shutdown_timeout="1s")
    col = collector_factory([config], ports["metrics_port"])
    col.wait_ready()
    spans = make_spans("svc-mem", n_traces=2)
    exporter = GrpcExporter(endpoint=f"127.0.0.1:{ports['grpc_port']}", insecure=True)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    wait_for(lambda: col.metric("tracetriage_exporter_circuit_state", exporter="otlp") == 1, timeout=20)
    assert col.terminate(timeout=30) == 0
    log = col.stderr
    assert log.count(LOST) == 1, log
    assert f"0 spans queued (0 batches) and {len(spans)} in flight {LOST}" in log, log
    assert "persistent" not in log and "data it still held is lost" not in log, log


@pytest.mark.timeout(120)
def test_queue_write_failure_hides_the_path_from_clients_and_turns_health_503(
        tmp_path: Path, collector_factory) -> None:
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port(),
             "health_port": free_port(), "backend_port": free_port()}
    config = write_config(tmp_path, **ports, persistent=True, shutdown_timeout="5s")
    with backend(ports["backend_port"]) as b:
        col = collector_factory([config], ports["metrics_port"])
        col.wait_ready()
        assert health(ports["health_port"])[0] == 200
        queue_dir = tmp_path / "state" / "exporter_otlp"
        # Root ignores permission bits: make the queue unwritable by putting a file where its directory was.
        shutil.rmtree(queue_dir)
        queue_dir.write_text("not a directory")
        spans = make_spans("svc-broken", n_traces=1)
        # Raw OTLP clients over real connections, to read exactly what the receiver answers.
        body = _post_spans(ports["http_port"], spans)
        assert body[0] == 503
        assert "cannot queue data right now" in body[1]
        assert str(tmp_path) not in body[1] and "exporter_otlp" not in body[1] and ".tmp" not in body[1]
        code, details = _grpc_export(ports["grpc_port"], spans)
        assert code is grpc.StatusCode.UNAVAILABLE
        assert "cannot queue data right now" in details and str(tmp_path) not in details
        status, text = health(ports["health_port"])
        assert status == 503 and str(tmp_path) not in text
        # The operator's log has the path.
        wait_for(lambda: str(queue_dir) in col.stderr)
        assert "cannot write to the persistent queue" in col.stderr
        # Repaired: the next write succeeds, health is 200 again and the data goes out.
        queue_dir.unlink()
        queue_dir.mkdir()
        assert _post_spans(ports["http_port"], spans)[0] == 200
        assert health(ports["health_port"])[0] == 200
        wait_for(lambda: b.count() == len(spans), timeout=20)
        assert col.terminate(timeout=30) == 0


def _post_spans(port: int, spans: list[ReadableSpan]) -> tuple[int, str]:
    data = encode_spans(spans).SerializePartialToString()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=data, method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def _grpc_export(port: int, spans: list[ReadableSpan]) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                   request_serializer=ExportTraceServiceRequest.SerializeToString,
                                   response_deserializer=ExportTraceServiceResponse.FromString)
        try:
            call(encode_spans(spans), timeout=10)
        except grpc.RpcError as e:
            return e.code(), e.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""
