"""Real OTLP servers on 127.0.0.1 for the sender tests: grpc.aio and aiohttp, scripted to fail first."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import grpc.aio
from aiohttp import web
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.otlpjson import decode_request


class Received:
    """What a server accepted, and the attempts it refused."""

    def __init__(self, fail_first: int = 0, retry_after: float | None = None) -> None:
        self.fail_first = fail_first
        self.retry_after = retry_after
        self.attempts: list[float] = []
        self.requests: list[ExportTraceServiceRequest] = []

    def should_fail(self) -> bool:
        self.attempts.append(time.monotonic())
        return len(self.attempts) <= self.fail_first

    @property
    def spans(self) -> int:
        return sum(len(ss.spans) for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans)

    @property
    def trace_ids(self) -> set[bytes]:
        return {s.trace_id for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans
                for s in ss.spans}


@asynccontextmanager
async def grpc_server(received: Received) -> AsyncIterator[int]:
    async def export(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if received.should_fail():
            trailing: tuple[tuple[str, bytes], ...] = ()
            if received.retry_after is not None:
                detail = any_pb2.Any()
                delay = received.retry_after
                detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
                    seconds=int(delay), nanos=int((delay % 1) * 1e9))))
                status = status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message="busy",
                                           details=[detail])
                trailing = (("grpc-status-details-bin", status.SerializeToString()),)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "busy", trailing_metadata=trailing)
        received.requests.append(ExportTraceServiceRequest.FromString(request))
        return bytes(ExportTraceServiceResponse().SerializeToString())

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


@asynccontextmanager
async def http_server(received: Received) -> AsyncIterator[int]:
    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if received.should_fail():
            headers = {"Retry-After": str(int(received.retry_after))} if received.retry_after is not None else {}
            return web.Response(status=503, headers=headers, text="busy")
        if request.content_type == "application/json":
            received.requests.append(decode_request(body))
            return web.Response(body=b"{}", content_type="application/json")
        assert request.content_type == "application/x-protobuf"
        received.requests.append(ExportTraceServiceRequest.FromString(body))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
