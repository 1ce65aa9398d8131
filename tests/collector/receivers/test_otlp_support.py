"""Helpers shared by the otlp receiver tests (no tests here): a recording consumer, requests, a runner."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.component import ComponentID, Host, Kind, Settings
from collector.config import ByteSize
from collector.config.tls import TLSServerConfig
from collector.consumer import Capabilities
from collector.errors import ConsumerError
from collector.model import SpanBatch
from collector.receivers.otlp import (
    GRPCConfig,
    HTTPConfig,
    OTLPReceiver,
    OTLPReceiverConfig,
    ProtocolsConfig,
    factory,
)
from collector.telemetry import Telemetry

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class RecordingConsumer:
    """Records batches; ``error`` (if set) is raised instead; ``gate`` (if set) is awaited first."""

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []
        self.error: BaseException | None = None
        self.calls = 0
        self.gate: Any = None
        self.entered: Any = None

    async def consume_traces(self, batch: SpanBatch) -> None:
        self.calls += 1
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.batches.append(batch)

    def refuse(self, retriable: bool, retry_after: float | None = None) -> None:
        self.error = ConsumerError("pipeline full" if retriable else "rejected by backend",
                                   retriable=retriable, retry_after=retry_after)

    @property
    def span_count(self) -> int:
        return sum(b.span_count for b in self.batches)


def make_request(n: int = 3, service: str = "shop", *, first_trace: int = 1) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    spans = rs.scope_spans.add().spans
    for i in range(n):
        spans.add(trace_id=(first_trace + i // 10).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"),
                  parent_span_id=(i.to_bytes(8, "big") if i else b""), name=f"op{i}",
                  kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1_700_000_000_000_000_000 + i,
                  end_time_unix_nano=1_700_000_000_000_000_100 + i)
    return req


def make_settings(telemetry: Telemetry | None = None, name: str = "") -> Settings:
    return Settings(ComponentID("otlp", name), Kind.RECEIVER, telemetry or Telemetry(), logging.getLogger("otlp-test"))


def receiver_config(
    *, grpc: bool = True, http: bool = True, max_body: int = 1024 * 1024, max_msg_mib: int = 4,
    tls: TLSServerConfig | None = None, grpc_endpoint: str = "127.0.0.1:0", http_endpoint: str = "127.0.0.1:0",
) -> OTLPReceiverConfig:
    return OTLPReceiverConfig(protocols=ProtocolsConfig(
        grpc=GRPCConfig(endpoint=grpc_endpoint, max_recv_msg_size_mib=max_msg_mib, tls=tls) if grpc else None,
        http=HTTPConfig(endpoint=http_endpoint, max_request_body_size=ByteSize(max_body), tls=tls) if http else None,
    ))


@asynccontextmanager
async def running(
    config: OTLPReceiverConfig | None = None, consumer: RecordingConsumer | None = None,
    telemetry: Telemetry | None = None,
) -> AsyncIterator[tuple[OTLPReceiver, RecordingConsumer]]:
    consumer = consumer or RecordingConsumer()
    receiver = factory.create(make_settings(telemetry), config or receiver_config(), consumer)
    assert isinstance(receiver, OTLPReceiver)
    await receiver.start(Host())
    try:
        yield receiver, consumer
    finally:
        await receiver.shutdown()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway EC certificate for localhost / 127.0.0.1 made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key
