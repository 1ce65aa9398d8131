"""HTTPS on the collector's own listeners: ``service.telemetry.metrics.tls`` (``/metrics`` and the routes beside
it) and ``service.telemetry.ui.tls`` (the status page), with mutual TLS, min_version and certificate rotation,
as the receivers and health_check have them (tests/collector/test_tls.py)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from collector.config.tls import TLSServerConfig
from collector.errors import ComponentStartError
from collector.telemetry import Telemetry
from collector.telemetry.server import MetricsServer
from tests.collector.certs import CA
from tests.collector.test_tls import Files, client_context, eventually, https_get, reloads, served_serial
from tests.conftest import CollectorProcess, free_port


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(CA.create(tmp_path / "ca"), tmp_path)


@asynccontextmanager
async def metrics_server(tls: TLSServerConfig, telemetry: Telemetry | None = None) -> AsyncIterator[MetricsServer]:
    server = MetricsServer(telemetry or Telemetry(), "127.0.0.1:0", tls=tls)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


async def test_metrics_over_tls_and_mutual_tls(files: Files) -> None:
    async with metrics_server(files.tls()) as server:
        assert await https_get(f"https://localhost:{server.port}/metrics", client_context(files)) == 200
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS listener
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{server.port}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as resp:
                await resp.read()
    async with metrics_server(files.tls(client_ca_file=str(files.ca.pem))) as server:
        url = f"https://localhost:{server.port}/metrics"
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await https_get(url, client_context(files))
        assert await https_get(url, client_context(files, cert=True)) == 200


async def test_metrics_min_version_13_refuses_a_tls12_client(files: Files) -> None:
    async with metrics_server(files.tls(min_version="1.3")) as server:
        assert server.port is not None
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await served_serial(server.port, client_context(files, max_version=ssl.TLSVersion.TLSv1_2))
        assert await served_serial(server.port, client_context(files)) == files.serial


async def test_metrics_certificate_rotation(files: Files) -> None:
    telemetry = Telemetry()
    async with metrics_server(files.tls(reload_interval="100ms"), telemetry) as server:
        assert server.port is not None
        port = server.port
        assert await served_serial(port, client_context(files)) == files.serial
        second = files.rotate()

        async def new_cert() -> bool:
            return await served_serial(port, client_context(files)) == second

        await eventually(new_cert, "the rotated certificate on /metrics")
        assert reloads(telemetry, "telemetry 127.0.0.1:0") >= 1


async def test_an_unreadable_certificate_stops_the_start(files: Files, tmp_path: Path) -> None:
    missing = TLSServerConfig(cert_file=str(tmp_path / "absent.pem"), key_file=str(files.key))
    with pytest.raises(ComponentStartError, match=r"service\.telemetry\.metrics: cannot start: .*absent\.pem"):
        await MetricsServer(Telemetry(), "127.0.0.1:0", tls=missing).start()


def _get(url: str, ctx: ssl.SSLContext) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.timeout(120)
def test_a_collector_serves_metrics_and_the_status_page_over_https(files: Files, tmp_path: Path) -> None:
    """The config keys through the real CLI: /metrics under mutual TLS, the status page under TLS, and
    ``tracetriage status --ca-file`` reading the page."""
    metrics_port, ui_port, grpc_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
exporters:
  debug: {{}}
service:
  telemetry:
    metrics:
      address: "127.0.0.1:{metrics_port}"
      tls: {{cert_file: "{files.cert}", key_file: "{files.key}", client_ca_file: "{files.ca.pem}"}}
    ui:
      endpoint: "127.0.0.1:{ui_port}"
      tls: {{cert_file: "{files.cert}", key_file: "{files.key}", reload_interval: 1m}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
""")
    col = CollectorProcess([cfg], tmp_path)
    try:
        col.wait_ready()
        assert f"Serving metrics on https://127.0.0.1:{metrics_port}/metrics" in col.stderr
        assert f"Serving the status page on https://127.0.0.1:{ui_port}/" in col.stderr
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            _get(f"https://localhost:{metrics_port}/metrics", client_context(files))  # no client certificate
        assert _get(f"https://localhost:{metrics_port}/metrics", client_context(files, cert=True)) == 200
        assert _get(f"https://localhost:{ui_port}/api/v1/status", client_context(files)) == 200
        status_cmd = [sys.executable, "-m", "collector", "status", "--endpoint", f"https://localhost:{ui_port}"]
        untrusted = subprocess.run(status_cmd, capture_output=True, text=True, timeout=60, check=False)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
        ok = subprocess.run([*status_cmd, "--ca-file", str(files.ca.pem)], capture_output=True, text=True,
                            timeout=60, check=False)
        assert ok.returncode == 0, ok.stderr
        assert "pipeline" in ok.stdout.lower(), ok.stdout
    finally:
        col.terminate()
        col.stop()
