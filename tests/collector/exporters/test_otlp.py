"""The otlp (gRPC) exporter against a real grpc.aio TraceService server scripted to fail."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collector.component import Host, Settings
from collector.config import ConfigError, decode
from collector.errors import ComponentStartError, RefusedError
from collector.exporters import otlp
from tests.collector.exporters import FAST_RETRY, free_port, make_batch, make_settings, metric

Failure = tuple[grpc.StatusCode, str, float | None]


class TraceService:
    """Records every Export attempt; fails them as scripted (code, message, RetryInfo delay or None)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[float, bytes]] = []
        self.received: list[bytes] = []
        self.metadata: list[dict[str, Any]] = []
        self.script: list[Failure] = []
        self.always: Failure | None = None
        self.rejected_spans = 0
        self.gate: asyncio.Event | None = None

    async def export(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        self.attempts.append((time.monotonic(), request))
        self.metadata.append(dict(context.invocation_metadata() or ()))
        if self.gate is not None:
            await self.gate.wait()
        failure = self.script.pop(0) if self.script else self.always
        if failure is not None:
            code, message, delay = failure
            trailing: tuple[tuple[str, bytes], ...] = ()
            if delay is not None:
                detail = any_pb2.Any()
                detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
                    seconds=int(delay), nanos=int((delay % 1) * 1e9))))
                status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
                trailing = (("grpc-status-details-bin", status.SerializeToString()),)
            await context.abort(code, message, trailing_metadata=trailing)
        self.received.append(request)
        response = ExportTraceServiceResponse()
        if self.rejected_spans:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=self.rejected_spans, error_message="too old"))
        return response.SerializeToString()


@asynccontextmanager
async def grpc_server(port: int = 0) -> AsyncIterator[tuple[TraceService, int]]:
    service = TraceService()
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(service.export)},
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield service, bound
    finally:
        await server.stop(None)


def make_exporter(port: int, **overrides: Any) -> tuple[otlp.OTLPExporter, Settings]:
    config: dict[str, Any] = {
        "endpoint": f"127.0.0.1:{port}",
        "tls": {"insecure": True},
        "retry_on_failure": FAST_RETRY,
        "sending_queue": {"num_consumers": 2, "queue_size": 10},
    }
    config.update(overrides)
    settings = make_settings("otlp/test")
    return otlp.factory.create(settings, decode(otlp.OTLPConfig, config)), settings


@pytest.mark.parametrize("compression", ["gzip", "none"])
async def test_bytes_arrive_unchanged_with_headers(compression: str) -> None:
    async with grpc_server() as (service, port):
        exporter, settings = make_exporter(port, headers={"X-Tenant": "acme"}, compression=compression)
        await exporter.start(Host())
        batches = [make_batch(3, seed=1), make_batch(4, seed=2)]
        for b in batches:
            await exporter.consume_traces(b)
        await exporter.shutdown()
        await exporter.shutdown()
    assert sorted(service.received) == sorted(b.to_bytes() for b in batches)
    assert service.metadata[0]["x-tenant"] == "acme"
    assert metric(settings, "otelcol_exporter_sent_spans") == 7
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 0


async def test_unavailable_with_retry_info_then_success() -> None:
    async with grpc_server() as (service, port):
        service.script = [(grpc.StatusCode.UNAVAILABLE, "overloaded", 0.25)]
        exporter, settings = make_exporter(port)
        await exporter.start(Host())
        await exporter.consume_traces(make_batch(2))
        await exporter.shutdown()
    assert len(service.attempts) == 2
    assert service.attempts[1][0] - service.attempts[0][0] >= 0.24
    assert metric(settings, "otelcol_exporter_sent_spans") == 2


@pytest.mark.parametrize(
    ("failure", "retried"),
    [
        ((grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", 0.01), True),
        ((grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", None), False),
        ((grpc.StatusCode.INVALID_ARGUMENT, "bad span", None), False),
        ((grpc.StatusCode.DEADLINE_EXCEEDED, "late", None), True),
    ],
)
async def test_status_code_mapping(failure: Failure, retried: bool, caplog: pytest.LogCaptureFixture) -> None:
    async with grpc_server() as (service, port):
        service.script = [failure]
        exporter, settings = make_exporter(port)
        await exporter.start(Host())
        with caplog.at_level(logging.ERROR):
            await exporter.consume_traces(make_batch(3))
            await exporter.shutdown()
    if retried:
        assert len(service.attempts) == 2 and len(service.received) == 1
        assert metric(settings, "otelcol_exporter_sent_spans") == 3
    else:
        assert len(service.attempts) == 1 and not service.received
        assert metric(settings, "otelcol_exporter_send_failed_spans") == 3
        assert failure[1] in caplog.text and failure[0].name in caplog.text


async def test_gives_up_after_max_elapsed_time() -> None:
    async with grpc_server() as (service, port):
        service.always = (grpc.StatusCode.UNAVAILABLE, "down", None)
        retry = dict(FAST_RETRY, max_elapsed_time="300ms")
        # Given up only without the breaker: with it, batches wait in the queue while the backend is down.
        exporter, settings = make_exporter(port, retry_on_failure=retry, circuit_breaker={"enabled": False})
        await exporter.start(Host())
        started = time.monotonic()
        await exporter.consume_traces(make_batch(5))
        await exporter.shutdown()
    assert time.monotonic() - started < 2
    assert len(service.attempts) >= 3
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 5
    assert metric(settings, "otelcol_exporter_sent_spans") == 0


async def test_partial_success_counts_rejected(caplog: pytest.LogCaptureFixture) -> None:
    async with grpc_server() as (service, port):
        service.rejected_spans = 1
        exporter, settings = make_exporter(port)
        await exporter.start(Host())
        with caplog.at_level(logging.WARNING):
            await exporter.consume_traces(make_batch(3))
            await exporter.shutdown()
    assert len(service.attempts) == 1
    assert "partial success, 1 of 3 spans rejected: too old" in caplog.text
    assert metric(settings, "otelcol_exporter_sent_spans") == 2
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 1


async def test_queue_full_refused() -> None:
    async with grpc_server() as (service, port):
        service.gate = asyncio.Event()
        exporter, settings = make_exporter(port, sending_queue={"num_consumers": 1, "queue_size": 1})
        await exporter.start(Host())
        await exporter.consume_traces(make_batch(1, seed=1))
        for _ in range(100):
            if service.attempts:
                break
            await asyncio.sleep(0.01)
        await exporter.consume_traces(make_batch(1, seed=2))
        with pytest.raises(RefusedError):
            await exporter.consume_traces(make_batch(4, seed=3))
        assert metric(settings, "otelcol_exporter_enqueue_failed_spans") == 4
        assert metric(settings, "otelcol_exporter_queue_size") == 1
        assert metric(settings, "otelcol_exporter_queue_capacity") == 1
        service.gate.set()
        await exporter.shutdown()
    assert len(service.received) == 2
    assert metric(settings, "otelcol_exporter_queue_size") == 0


async def test_shutdown_drains_queue_once_server_is_up() -> None:
    port = free_port()
    exporter, settings = make_exporter(port, retry_on_failure=dict(FAST_RETRY, max_elapsed_time="20s"),
                                       circuit_breaker={"open_duration": "200ms"})
    await exporter.start(Host())
    batches = [make_batch(2, seed=i + 1) for i in range(3)]
    for b in batches:
        await exporter.consume_traces(b)
    shutdown = asyncio.create_task(exporter.shutdown())
    await asyncio.sleep(0.2)
    assert not shutdown.done()
    async with grpc_server(port) as (service, _):
        await asyncio.wait_for(shutdown, 15)
        assert sorted(service.received) == sorted(b.to_bytes() for b in batches)
    assert metric(settings, "otelcol_exporter_sent_spans") == 6


async def test_shutdown_before_start_and_unreadable_ca(tmp_path: Any) -> None:
    exporter, _ = make_exporter(free_port())
    await exporter.shutdown()
    exporter, _ = make_exporter(free_port(), tls={"ca_file": str(tmp_path / "nope.pem")})
    with pytest.raises(ComponentStartError, match=r"nope\.pem"):
        await exporter.start(Host())
    await exporter.shutdown()


def test_config_defaults_and_validation() -> None:
    cfg = decode(otlp.OTLPConfig, {"endpoint": "tempo:4317"})
    assert (cfg.compression, cfg.timeout, cfg.tls.insecure, cfg.sending_queue.queue_size) == ("gzip", 5.0, False, 1000)
    assert otlp.grpc_target("https://tempo:4317") == "tempo:4317"
    assert otlp.grpc_target("[::1]:4317") == "[::1]:4317"
    with pytest.raises(ConfigError) as info:
        decode(otlp.OTLPConfig, {
            "endpoint": "tempo", "compression": "zip", "bogus": True, "sending_queue": {"queue_size": -5},
        }, "exporters.otlp")
    text = str(info.value)
    assert "exporters.otlp.endpoint: must be host:port" in text
    assert "exporters.otlp.compression: must be one of" in text
    assert "exporters.otlp.bogus: unknown key" in text
    assert "exporters.otlp.sending_queue.queue_size: must be >= 0" in text
    with pytest.raises(ConfigError, match=r"exporters\.otlp\.endpoint: is required"):
        decode(otlp.OTLPConfig, {}, "exporters.otlp")
    with pytest.raises(ConfigError, match="port 99999 out of range"):
        decode(otlp.OTLPConfig, {"endpoint": "h:99999"})
