"""otlp and otlphttp exporters over TLS, verifying the server with a test CA made by the openssl CLI."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import grpc
import grpc.aio
import pytest
from aiohttp import web

from collector.component import Host
from collector.config import decode
from collector.exporters import otlp, otlphttp
from tests.collector.exporters import FAST_RETRY, make_batch, make_settings, metric
from tests.collector.exporters.test_otlp import TraceService

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return d


async def test_otlp_grpc_tls(certs: Path) -> None:
    service = TraceService()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(service.export)},
    ),))
    creds = grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        settings = make_settings("otlp")
        config = decode(otlp.OTLPConfig, {
            "endpoint": f"127.0.0.1:{port}", "tls": {"ca_file": str(certs / "ca.pem")},
            "retry_on_failure": FAST_RETRY,
        })
        exporter = otlp.factory.create(settings, config)
        await exporter.start(Host())
        batch = make_batch(2)
        await exporter.consume_traces(batch)
        await exporter.shutdown()
    finally:
        await server.stop(None)
    assert service.received == [batch.to_bytes()]
    assert metric(settings, "otelcol_exporter_sent_spans") == 2


async def test_otlphttp_https(certs: Path) -> None:
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", handle)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = make_settings("otlphttp")
        config = decode(otlphttp.OTLPHTTPConfig, {
            "endpoint": f"https://127.0.0.1:{port}", "tls": {"ca_file": str(certs / "ca.pem")},
            "compression": "none", "retry_on_failure": FAST_RETRY,
        })
        exporter = otlphttp.factory.create(settings, config)
        await exporter.start(Host())
        batch = make_batch(2)
        await exporter.consume_traces(batch)
        await exporter.shutdown()
    finally:
        await runner.cleanup()
    assert bodies == [batch.to_bytes()]
    assert metric(settings, "otelcol_exporter_sent_spans") == 2
