"""The otlphttp exporter against a real aiohttp server scripted to fail."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collector.component import Host, Settings
from collector.config import ConfigError, decode
from collector.errors import PermanentError
from collector.exporters import otlphttp
from collector.otlpjson import decode_request
from tests.collector.exporters import FAST_RETRY, free_port, make_batch, make_settings, metric

Reply = tuple[int, dict[str, str], bytes]


class OTLPServer:
    """Records every POST (raw body, headers); answers as scripted, then 200."""

    def __init__(self) -> None:
        self.attempts: list[tuple[float, str, bytes, dict[str, str]]] = []
        self.script: list[Reply] = []
        self.always: Reply | None = None
        self.ok_reply: Reply = (200, {"Content-Type": "application/x-protobuf"}, b"")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts.append((time.monotonic(), request.path, body, dict(request.headers)))
        status, headers, payload = self.script.pop(0) if self.script else (self.always or self.ok_reply)
        return web.Response(status=status, headers=headers, body=payload)

    @property
    def delivered(self) -> list[bytes]:
        """Decompressed bodies of every attempt."""
        out = []
        for _, _, body, headers in self.attempts:
            out.append(gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body)
        return out


@asynccontextmanager
async def http_server(port: int = 0) -> AsyncIterator[tuple[OTLPServer, int]]:
    server = OTLPServer()
    app = web.Application()
    app.router.add_post("/{tail:.*}", server.handle)
    runner = web.AppRunner(app, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield server, bound
    finally:
        await runner.cleanup()


def make_exporter(port: int, **overrides: Any) -> tuple[otlphttp.OTLPHTTPExporter, Settings]:
    config: dict[str, Any] = {
        "endpoint": f"http://127.0.0.1:{port}",
        "retry_on_failure": FAST_RETRY,
        "sending_queue": {"num_consumers": 2, "queue_size": 10},
    }
    config.update(overrides)
    settings = make_settings("otlphttp")
    return otlphttp.factory.create(settings, decode(otlphttp.OTLPHTTPConfig, config)), settings


async def test_proto_gzip_bytes_unchanged() -> None:
    async with http_server() as (server, port):
        exporter, settings = make_exporter(port, headers={"Authorization": "Bearer t"})
        await exporter.start(Host())
        batch = make_batch(3)
        await exporter.consume_traces(batch)
        await exporter.shutdown()
        await exporter.shutdown()
    assert len(server.attempts) == 1
    _, path, raw, headers = server.attempts[0]
    assert path == "/v1/traces"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["Authorization"] == "Bearer t"
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == batch.to_bytes()
    assert metric(settings, "otelcol_exporter_sent_spans") == 3


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_json_to_traces_endpoint(compression: str) -> None:
    async with http_server() as (server, port):
        exporter, _ = make_exporter(
            port, encoding="json", compression=compression, traces_endpoint=f"http://127.0.0.1:{port}/custom/path"
        )
        await exporter.start(Host())
        batch = make_batch(2)
        await exporter.consume_traces(batch)
        await exporter.shutdown()
    _, path, _, headers = server.attempts[0]
    assert path == "/custom/path"
    assert headers.get("Content-Encoding") == ("gzip" if compression == "gzip" else None)
    assert headers["Content-Type"] == "application/json"
    assert decode_request(server.delivered[0]) == batch.request


async def test_503_retry_after_honoured() -> None:
    async with http_server() as (server, port):
        server.script = [(503, {"Retry-After": "1"}, b"busy")]
        exporter, settings = make_exporter(port)
        await exporter.start(Host())
        await exporter.consume_traces(make_batch(2))
        await exporter.shutdown()
    assert len(server.attempts) == 2
    assert server.attempts[1][0] - server.attempts[0][0] >= 0.95
    assert metric(settings, "otelcol_exporter_sent_spans") == 2


async def test_429_502_504_are_retried() -> None:
    async with http_server() as (server, port):
        server.script = [(429, {}, b""), (502, {}, b"bad gateway"), (504, {}, b"")]
        exporter, settings = make_exporter(port)
        await exporter.start(Host())
        await exporter.consume_traces(make_batch(4))
        await exporter.shutdown()
    assert len(server.attempts) == 4
    assert metric(settings, "otelcol_exporter_sent_spans") == 4


async def test_400_permanent_with_status_message(caplog: pytest.LogCaptureFixture) -> None:
    status = status_pb2.Status(code=3, message="span name missing").SerializeToString()
    async with http_server() as (server, port):
        server.script = [(400, {"Content-Type": "application/x-protobuf"}, status)]
        exporter, settings = make_exporter(port)
        await exporter.start(Host())
        with caplog.at_level(logging.ERROR):
            await exporter.consume_traces(make_batch(3))
            await exporter.shutdown()
    assert len(server.attempts) == 1
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 3
    assert "HTTP 400 Bad Request: span name missing" in caplog.text


async def test_gives_up_after_max_elapsed_time() -> None:
    async with http_server() as (server, port):
        server.always = (503, {}, b"")
        # Given up only without the breaker: with it, batches wait in the queue while the backend is down.
        exporter, settings = make_exporter(port, retry_on_failure=dict(FAST_RETRY, max_elapsed_time="300ms"),
                                           circuit_breaker={"enabled": False})
        await exporter.start(Host())
        await exporter.consume_traces(make_batch(5))
        await exporter.shutdown()
    assert len(server.attempts) >= 3
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 5


async def test_partial_success_json(caplog: pytest.LogCaptureFixture) -> None:
    response = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=2, error_message="dup"))
    async with http_server() as (server, port):
        server.ok_reply = (200, {"Content-Type": "application/x-protobuf"}, response.SerializeToString())
        exporter, settings = make_exporter(port)
        await exporter.start(Host())
        with caplog.at_level(logging.WARNING):
            await exporter.consume_traces(make_batch(3))
            await exporter.shutdown()
    assert "2 of 3 spans rejected: dup" in caplog.text
    assert metric(settings, "otelcol_exporter_sent_spans") == 1
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 2


async def test_shutdown_drains_queue_once_server_is_up() -> None:
    port = free_port()
    exporter, settings = make_exporter(port, circuit_breaker={"open_duration": "200ms"})
    await exporter.start(Host())
    batches = [make_batch(2, seed=i + 1) for i in range(3)]
    for b in batches:
        await exporter.consume_traces(b)
    shutdown = asyncio.create_task(exporter.shutdown())
    await asyncio.sleep(0.2)
    assert not shutdown.done()
    assert metric(settings, "otelcol_exporter_sent_spans") == 0
    async with http_server(port) as (server, _):
        await asyncio.wait_for(shutdown, 5)
        assert sorted(server.delivered) == sorted(b.to_bytes() for b in batches)
    assert metric(settings, "otelcol_exporter_sent_spans") == 6


async def test_queue_disabled_raises_to_caller() -> None:
    async with http_server() as (server, port):
        server.always = (413, {}, b"too large")
        exporter, _ = make_exporter(port, sending_queue={"enabled": False})
        await exporter.start(Host())
        with pytest.raises(PermanentError, match="HTTP 413"):
            await exporter.consume_traces(make_batch(1))
        await exporter.shutdown()


def test_retry_after_parsing() -> None:
    assert otlphttp.parse_retry_after("7") == 7.0
    assert otlphttp.parse_retry_after(None) is None
    assert otlphttp.parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    delay = otlphttp.parse_retry_after(date, now=now)
    assert delay is not None and 28 <= delay <= 31
    assert otlphttp.parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_config_urls_and_validation() -> None:
    cfg = decode(otlphttp.OTLPHTTPConfig, {"endpoint": "https://otel.example.com:4318/"})
    assert cfg.url == "https://otel.example.com:4318/v1/traces"
    assert (cfg.compression, cfg.encoding, cfg.timeout) == ("gzip", "proto", 5.0)
    cfg = decode(otlphttp.OTLPHTTPConfig, {"endpoint": "http://a:1/base"})
    assert cfg.url == "http://a:1/base/v1/traces"
    with pytest.raises(ConfigError) as info:
        decode(otlphttp.OTLPHTTPConfig, {
            "endpoint": "tempo:4318", "encoding": "xml", "nope": 1, "sending_queue": {"queue_size": -1},
        }, "exporters.otlphttp")
    text = str(info.value)
    assert "exporters.otlphttp.endpoint: must be an http:// or https:// URL" in text
    assert "exporters.otlphttp.encoding: must be one of" in text
    assert "exporters.otlphttp.nope: unknown key" in text
    assert "exporters.otlphttp.sending_queue.queue_size: must be >= 0" in text
    with pytest.raises(ConfigError, match="is required"):
        decode(otlphttp.OTLPHTTPConfig, {})


async def test_redirect_to_another_host_is_not_followed(caplog: pytest.LogCaptureFixture) -> None:
    """A second server on 127.0.0.1 (another origin) never sees the batch or the Authorization header."""
    async with http_server() as (server, port), http_server() as (other, other_port):
        server.always = (307, {"Location": f"http://127.0.0.1:{other_port}/v1/traces"}, b"")
        exporter, settings = make_exporter(port, headers={"Authorization": "Bearer exporter-token-1"})
        await exporter.start(Host())
        with caplog.at_level(logging.INFO):
            await exporter.consume_traces(make_batch(3))
            await exporter.shutdown()
    assert len(server.attempts) == 1  # refused at once, never retried
    assert server.attempts[0][3]["Authorization"] == "Bearer exporter-token-1"
    assert other.attempts == []
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 3
    assert "another origin" in caplog.text and "exporter-token-1" not in caplog.text


async def test_same_host_redirect_is_followed() -> None:
    async with http_server() as (server, port):
        server.script = [(308, {"Location": "/moved/v1/traces"}, b"")]
        exporter, settings = make_exporter(port, headers={"X-Api-Key": "same-host-key"})
        await exporter.start(Host())
        batch = make_batch(2)
        await exporter.consume_traces(batch)
        await exporter.shutdown()
    assert [a[1] for a in server.attempts] == ["/v1/traces", "/moved/v1/traces"]
    assert server.attempts[1][3]["X-Api-Key"] == "same-host-key"
    assert server.delivered[1] == batch.to_bytes()
    assert metric(settings, "otelcol_exporter_sent_spans") == 2


async def test_connection_errors_do_not_print_the_endpoint_password(caplog: pytest.LogCaptureFixture) -> None:
    exporter, _ = make_exporter(free_port(), endpoint=f"http://otel:exp0rter-pass@127.0.0.1:{free_port()}",
                                headers={"X-Api-Key": "api-key-9"},
                                retry_on_failure=dict(FAST_RETRY, max_elapsed_time="200ms"),
                                circuit_breaker={"enabled": False})
    await exporter.start(Host())
    with caplog.at_level(logging.DEBUG):
        await exporter.consume_traces(make_batch(1))
        await exporter.shutdown()
    assert "failed" in caplog.text
    assert "exp0rter-pass" not in caplog.text and "api-key-9" not in caplog.text


def test_header_values_are_opaque() -> None:
    cfg = decode(otlphttp.OTLPHTTPConfig, {"endpoint": "http://h:4318", "headers": {"X-Api-Key": "k-123"}})
    assert "k-123" not in repr(cfg) and cfg.headers["X-Api-Key"].reveal() == "k-123"
    with pytest.raises(ConfigError) as info:
        decode(otlphttp.OTLPHTTPConfig, {"endpoint": "ftp://u:pw-in-url@h/"}, "exporters.otlphttp")
    assert "pw-in-url" not in str(info.value) and "exporters.otlphttp.endpoint" in str(info.value)


def test_authorization_header_and_url_credentials_are_refused_together() -> None:
    with pytest.raises(ConfigError) as info:
        decode(otlphttp.OTLPHTTPConfig, {"endpoint": "https://u:pw-9@h/", "headers": {"Authorization": "Bearer t-9"}},
               "exporters.otlphttp")
    text = str(info.value)
    assert "exporters.otlphttp.headers.Authorization: the endpoint already carries credentials" in text
    assert "pw-9" not in text and "t-9" not in text
