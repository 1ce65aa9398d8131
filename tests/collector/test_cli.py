"""The CLI as users run it: validate, components (plugins included), crash landings, graceful SIGTERM."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from collector.model import count_spans
from tests.conftest import ROOT, free_port, wait_for
from tests.e2e.test_sdk import make_spans


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env=env)


BAD = """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:PORT"}
      htttp: {}
processors:
  batch: {send_batch_size: -5}
  memory_limiter: {check_interval: 1s, limit_mib: 100, spike_limit_mib: 200}
exporters:
  debug: {verbosity: loud}
  fiel: {path: /tmp/x}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, memory_limiter, tail_sampling]
      exporters: [debug, otlp]
"""


def test_validate_reports_every_mistake(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(BAD.replace("PORT", "4317"))
    r = cli("validate", "--config", str(cfg))
    assert r.returncode == 2, r.stderr
    for part in ("receivers.otlp.protocols.htttp: unknown key",
                 "processors.batch.send_batch_size: must be",
                 "processors.memory_limiter",
                 "exporters.debug.verbosity: must be one of",
                 "exporters.fiel: unknown exporter type 'fiel'",
                 "service.pipelines.traces.processors[2]: references processor 'tail_sampling'",
                 "service.pipelines.traces.exporters[1]: references exporter 'otlp'"):
        assert part in r.stderr, f"{part!r} not in:\n{r.stderr}"
    assert str(cfg) in r.stderr
    assert r.stderr.count(f"{cfg}: ") >= 7


def test_validate_ok_and_bare_config_means_run(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("""
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
""")
    r = cli("validate", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("service: {}\n")
    r = cli("--config", str(bad))  # no subcommand: run
    assert r.returncode == 2
    assert "service.pipelines: is required" in r.stderr


def test_run_with_bad_config_exits_2_before_opening_ports(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(BAD.replace("PORT", str(port)))
    with socket.socket() as held:  # if the collector tried to bind, it would fail with 'address in use' (exit 1)
        held.bind(("127.0.0.1", port))
        held.listen()
        r = cli("run", "--config", str(cfg))
    assert r.returncode == 2
    assert "invalid configuration" in r.stderr
    assert "cannot listen" not in r.stderr and "Starting" not in r.stderr


def _base_config(grpc_port: int, metrics_port: int, extra: str = "", exporter: str = "debug: {}") -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
exporters:
  {exporter}
{extra}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [{exporter.split(":")[0]}]
"""


def test_port_in_use_is_a_fast_controlled_crash(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_base_config(port, free_port()))
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        t0 = time.monotonic()
        r = cli("run", "--config", str(cfg))
        elapsed = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert elapsed < 30  # a crash, not a hang (a few seconds on an idle machine, start-up included)
    assert "Failed to start" in r.stderr and "receiver otlp" in r.stderr and str(port) in r.stderr
    assert r.stderr.count("Failed to start") == 1


@pytest.mark.parametrize("what", ["unwritable_file", "bad_certificate"])
def test_component_that_cannot_start_exits_1(tmp_path: Path, what: str) -> None:
    cfg = tmp_path / "c.yaml"
    if what == "unwritable_file":
        text = _base_config(free_port(), free_port(), exporter=f'file: {{path: "{tmp_path}/no/such/dir/out.json"}}')
        needle = "no/such/dir"
    else:
        cert = tmp_path / "cert.pem"
        cert.write_text("not a certificate")
        text = f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "127.0.0.1:{free_port()}"
        tls: {{cert_file: "{cert}", key_file: "{cert}"}}
exporters: {{debug: {{}}}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:{free_port()}"}}}}
  pipelines: {{traces: {{receivers: [otlp], exporters: [debug]}}}}
"""
        needle = "receiver otlp"
    cfg.write_text(text)
    r = cli("run", "--config", str(cfg))
    assert r.returncode == 1, r.stderr
    assert "Failed to start" in r.stderr and needle in r.stderr


def test_components_lists_builtins_and_plugins(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "site"
    plugin_dir.mkdir()
    (plugin_dir / "ttplugin.py").write_text(
        "from dataclasses import dataclass\n"
        "from collector import Factory, Kind\n"
        "@dataclass(frozen=True)\nclass Cfg:\n    level: int = 1\n"
        "factory = Factory('myfilter', Kind.PROCESSOR, Cfg, lambda s, c, n: n, stability='alpha')\n")
    dist = plugin_dir / "ttplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ttplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tracetriage.components]\nmyfilter = ttplugin:factory\n")
    env = {"PYTHONPATH": str(plugin_dir), "PATH": "/usr/bin:/bin"}
    r = cli("components", env=env)
    assert r.returncode == 0, r.stderr
    for name in ("otlp", "batch", "memory_limiter", "debug", "file", "otlphttp", "health_check", "myfilter"):
        assert name in r.stdout
    assert "plugin ttplugin" in r.stdout
    # The plugin is usable in a config.
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}}
processors: {myfilter: {level: 3}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], processors: [myfilter], exporters: [debug]}}}
""")
    assert cli("validate", "--config", str(cfg), env=env).returncode == 0


class _Sink:
    """A real OTLP gRPC backend (grpcio, threads) that records every request."""

    def __init__(self, port: int) -> None:
        self.spans = 0
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        handler = grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService", {
            "Export": grpc.unary_unary_rpc_method_handler(
                self._export, request_deserializer=ExportTraceServiceRequest.FromString,
                response_serializer=ExportTraceServiceResponse.SerializeToString)})
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"127.0.0.1:{port}")

    def _export(self, request: ExportTraceServiceRequest, context: object) -> ExportTraceServiceResponse:
        with self._lock:
            self.spans += count_spans(request)
        return ExportTraceServiceResponse()


def test_sigterm_delivers_everything_accepted(tmp_path: Path, collector_factory) -> None:
    """Spans sit in the batch processor and the exporter queue (backend down) when SIGTERM arrives:
    the collector flushes and drains them to the backend, once it is up, before exiting 0."""
    grpc_port, metrics_port, sink_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
  batch: {{timeout: 30s, send_batch_size: 100000}}
exporters:
  otlp:
    endpoint: "127.0.0.1:{sink_port}"
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms}}
service:
  shutdown_timeout: 25s
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
""")
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    spans = make_spans("svc", n_traces=20)
    exp = GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    try:
        for i in range(0, len(spans), 20):
            assert exp.export(spans[i:i + 20]) is SpanExportResult.SUCCESS
    finally:
        exp.shutdown()
    assert col.metric("otelcol_exporter_sent_spans_total") == 0  # still held in the batch processor
    col.proc.send_signal(15)
    time.sleep(1.0)
    assert col.proc.poll() is None  # still draining: the backend is down
    sink = _Sink(sink_port)
    sink.server.start()
    try:
        assert col.proc.wait(25) == 0, col.stderr
        assert sink.spans == len(spans)
    finally:
        sink.server.stop(0)


def test_health_check_answers(tmp_path: Path, collector_factory) -> None:
    health_port, metrics_port = free_port(), free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_base_config(free_port(), metrics_port, extra=f"""
extensions:
  health_check: {{endpoint: "127.0.0.1:{health_port}"}}
""").replace("service:\n", "service:\n  extensions: [health_check]\n"))
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=2) as r:
                return r.status == 200
        except urllib.error.URLError:
            return False

    wait_for(healthy)
    assert col.terminate() == 0


def test_json_logs_and_level(tmp_path: Path, collector_factory) -> None:
    metrics_port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_base_config(free_port(), metrics_port).replace(
        "  telemetry: {", "  telemetry: {logs: {level: info, encoding: json}, "))
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    assert col.terminate() == 0
    lines = [json.loads(line) for line in col.stderr.splitlines() if line.startswith("{")]
    assert lines, col.stderr
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    assert any(entry["msg"].startswith("Everything is ready") for entry in lines)


@pytest.mark.parametrize("tuning", ["1", "0"])
def test_run_starts_again_with_huge_pages(tmp_path: Path, collector_factory, tuning: str) -> None:
    # `run` replaces its process image (same pid) with one started under glibc's huge-pages tunable, when
    # glibc and the kernel offer it; TRACETRIAGE_MALLOC_TUNING=0 leaves the environment alone.
    from collector import memory

    metrics_port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(_base_config(free_port(), metrics_port))
    env = {"TRACETRIAGE_MALLOC_TUNING": tuning, "GLIBC_TUNABLES": ""}
    col = collector_factory([cfg], metrics_port, env)
    col.wait_ready()
    environ = Path(f"/proc/{col.proc.pid}/environ").read_bytes().split(b"\0")
    due = memory.huge_pages_environ(env) is not None
    assert (b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in environ) is due
    assert ("transparent huge pages requested" in col.stderr) is due
    if tuning == "1" and memory.glibc_version() is not None and memory._thp_available():
        assert due  # this machine can: the test shows the re-execution, not only its absence
    assert col.terminate() == 0
