"""The hot path never turns spans into Python dicts or dataclasses.

A protobuf request runs through the real gRPC receiver, the batch processor and the real OTLP gRPC
exporter to a real gRPC backend. We count the Python function calls made while it does (a profiler
hook), once for a 100-span request and once for a 5,000-span request: per-span conversion to dicts,
dataclasses or any Python-level object would make the count grow with the span count; it must not.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.component import ComponentID, Host, Kind, Settings
from collector.config import decode
from collector.exporters import otlp as otlp_exporter
from collector.receivers import otlp as otlp_receiver
from collector.telemetry import Telemetry
from pipelines import batch as batch_processor
from tests.conftest import free_port

SERVICE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def make_request(n: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="shop")))
    spans = rs.scope_spans.add().spans
    for i in range(n):
        s = spans.add(trace_id=(i // 10 + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"),
                      name="op", kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1, end_time_unix_nano=2)
        s.attributes.append(KeyValue(key="http.route", value=AnyValue(string_value="/cart")))
        s.attributes.append(KeyValue(key="http.status", value=AnyValue(int_value=200)))
    return req.SerializeToString()


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.names: dict[str, int] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            self.calls += 1
            key = f"{frame.f_code.co_filename}:{frame.f_code.co_name}"
            self.names[key] = self.names.get(key, 0) + 1


async def test_no_per_span_python_work() -> None:
    received: asyncio.Queue[int] = asyncio.Queue(maxsize=100)

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await received.put(len(request))
        return ExportTraceServiceResponse().SerializeToString()

    sink = grpc.aio.server()
    sink.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)}),))
    sink_port = sink.add_insecure_port("127.0.0.1:0")
    await sink.start()

    tel = Telemetry()

    def settings(kind: Kind, type_: str) -> Settings:
        return Settings(ComponentID(type_), kind, tel, logging.getLogger(type_))

    exp_cfg = decode(otlp_exporter.factory.config_class, {
        "endpoint": f"127.0.0.1:{sink_port}", "tls": {"insecure": True}, "compression": "none"})
    exporter = otlp_exporter.factory.create(settings(Kind.EXPORTER, "otlp"), exp_cfg)
    proc_cfg = decode(batch_processor.factory.config_class, {"timeout": "0s"})
    proc = batch_processor.factory.create(settings(Kind.PROCESSOR, "batch"), proc_cfg, exporter)
    port = free_port()
    recv_cfg = decode(otlp_receiver.factory.config_class,
                      {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}})
    receiver = otlp_receiver.factory.create(settings(Kind.RECEIVER, "otlp"), recv_cfg, proc)
    host = Host()
    for c in (exporter, proc, receiver):
        await c.start(host)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    call: Callable[..., Any] = channel.unary_unary(SERVICE)
    try:
        async def one(n: int) -> Counter:
            payload = make_request(n)
            await call(payload)  # warm-up: connections, lazy imports
            await received.get()
            counter = Counter()
            # Objects other tests in this worker left for the cycle collector (thousands of closed
            # transports) must not be finalised inside the counted window.
            gc.collect()
            gc.disable()
            sys.setprofile(counter)
            try:
                await call(payload)
                await received.get()
            finally:
                sys.setprofile(None)
                gc.enable()
            return counter

        small = await one(100)
        large = await one(5000)
    finally:
        await channel.close()
        for c in (receiver, proc, exporter):
            await c.shutdown()
        await sink.stop(None)

    grown = {k: v for k, v in large.names.items() if v > small.names.get(k, 0) + 5}
    assert large.calls < small.calls * 1.5 + 100, f"Python calls grow with span count: {grown}"
