"""Authentication in a real collector process: the otlp receiver behind ``bearertokenauth`` (HTTP) and
``basicauth`` (gRPC), clients with no, wrong and right credentials, refusals in /metrics; and no token or
password in the logs or in ``tracetriage validate`` output (valid and invalid configs)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import ROOT, free_port

TOKEN = "ingest-5ecret-token-42"
PASSWORD = "agent-5ecret-pass"
SECRETS = (TOKEN, PASSWORD)  # (the second token of the invalid config starts with TOKEN)
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def write_config(path: Path, grpc_port: int, http_port: int, metrics_port: int, health_port: int, *,
                 invalid: bool = False) -> Path:
    htpasswd = f"agent:$apr1$x$abcdefgh{PASSWORD}" if invalid else f"agent:{PASSWORD}"
    tokens = f', tokens: ["{TOKEN}2"]' if invalid else ""  # token and tokens: refused
    path.write_text(f"""
extensions:
  health_check: {{endpoint: "127.0.0.1:{health_port}"}}
  bearertokenauth/ingest: {{token: "{TOKEN}"{tokens}}}
  basicauth/agents:
    htpasswd: {{inline: "{htpasswd}"}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", auth: {{authenticator: basicauth/agents}}}}
      http: {{endpoint: "127.0.0.1:{http_port}", auth: {{authenticator: bearertokenauth/ingest}}}}
exporters:
  debug: {{}}
service:
  extensions: [health_check, bearertokenauth/ingest, basicauth/agents]
  telemetry:
    logs: {{level: debug}}
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
""")
    return path


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", "validate", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


def post(port: int, headers: dict[str, str]) -> int:
    request = Request(f"http://127.0.0.1:{port}/v1/traces", data=b"{}",
                      headers={"Content-Type": "application/json", **headers})
    try:
        with urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except HTTPError as e:
        assert e.headers["WWW-Authenticate"] == 'Bearer realm="tracetriage"'
        return e.code


def export(port: int, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary(EXPORT)(ExportTraceServiceRequest().SerializeToString(), metadata=metadata,
                                        timeout=10)
        except grpc.RpcError as e:
            return e.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def assert_no_secret(where: str, text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}:\n{text}"


@pytest.mark.timeout(120)
def test_receiver_auth_in_a_running_collector(tmp_path: Path, collector_factory) -> None:
    grpc_port, http_port, metrics_port, health_port = free_port(), free_port(), free_port(), free_port()
    config = write_config(tmp_path / "collector.yaml", grpc_port, http_port, metrics_port, health_port)
    checked = validate(config)
    assert checked.returncode == 0, checked.stderr
    assert_no_secret("validate (valid config)", checked.stdout + checked.stderr)

    col = collector_factory([config], metrics_port)
    col.wait_ready()
    assert post(http_port, {}) == 401
    assert post(http_port, {"Authorization": f"Bearer {TOKEN}x"}) == 401
    assert post(http_port, {"Authorization": f"Bearer {TOKEN}"}) == 200
    good = "Basic " + base64.b64encode(f"agent:{PASSWORD}".encode()).decode()
    bad = "Basic " + base64.b64encode(f"agent:{PASSWORD}!".encode()).decode()
    assert export(grpc_port, ()) is grpc.StatusCode.UNAUTHENTICATED
    assert export(grpc_port, (("authorization", bad),)) is grpc.StatusCode.UNAUTHENTICATED
    assert export(grpc_port, (("authorization", good),)) is grpc.StatusCode.OK
    with urlopen(f"http://127.0.0.1:{health_port}/", timeout=10) as answer:  # health stays unauthenticated
        assert answer.status == 200
    assert col.metric("tracetriage_receiver_auth_failures_total", transport="http", reason="missing_credentials") == 1
    assert col.metric("tracetriage_receiver_auth_failures_total", transport="http", reason="invalid_credentials") == 1
    assert col.metric("tracetriage_receiver_auth_failures_total", transport="grpc") == 2
    scrape = col.metrics()
    assert col.terminate() == 0
    output = col.stderr + col.stdout_path.read_text(errors="replace")
    assert "requests refused by the authenticator" in output
    assert_no_secret("the collector's output", output)
    assert_no_secret("/metrics", scrape)

    broken = write_config(tmp_path / "broken.yaml", grpc_port, http_port, metrics_port, health_port, invalid=True)
    refused = validate(broken)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "extensions.basicauth/agents.htpasswd.inline" in refused.stderr
    assert "Apache MD5 ($apr1$) entries are not supported" in refused.stderr
    assert "extensions.bearertokenauth/ingest.tokens: either tokens or token" in refused.stderr
    assert_no_secret("validate (invalid config)", refused.stdout + refused.stderr)
