"""10,000 idle gRPC streams and 2,000 idle connections against a collector process under ``ulimit -n 1024``,
opened with raw HTTP/2 (bench.grpc_flood), while an OTel SDK exporter keeps exporting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from bench.grpc_flood import OPEN_FILES, attack, config
from bench.harness import rss_bytes
from collector.receivers.otlp.config import DEFAULT_MAX_CONCURRENT_STREAMS
from tests.collector.receivers.test_otlp_grpc import sdk_spans
from tests.collector.receivers.test_otlp_support import TRACE_EXPORT, make_request
from tests.conftest import CollectorProcess, free_port

STREAMS = 10_000
IDLE_CONNECTIONS = 2_000
LIMIT_MIB = 1024  # sized as docs/components/receivers/otlp.md says: idle footprint + streams x 64 KiB
STREAM_KIB = 64  # what one idle stream may cost at most (about 25 KiB is measured: BENCHMARKS.md)
# max_connections 0 under ulimit -n 1024: a quarter of the open-file limit (grpc_max_connections)
AUTO_MAX_CONNECTIONS = OPEN_FILES // 4


def new_client_export(port: int, timeout: float, wait_for_ready: bool = False) -> None:
    """One Export on a connection of its own (a client that was not connected before)."""
    async def call() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                             options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            method = channel.unary_unary(TRACE_EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
            await method(make_request(1).SerializeToString(), timeout=timeout, wait_for_ready=wait_for_ready)
    asyncio.run(call())


@pytest.mark.timeout(300)
def test_idle_streams_and_connections_are_bounded(tmp_path: Path, collector_factory: type[CollectorProcess]) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    path = tmp_path / "collector.yaml"
    # read_timeout 5m: the streams must still be held while they are counted on a loaded machine
    path.write_text(config(grpc_port, metrics_port, tmp_path / "out.bin", limit_mib=LIMIT_MIB, read_timeout="5m"))
    col = CollectorProcess([path], tmp_path, metrics_port, open_files=OPEN_FILES)
    try:
        col.wait_ready()
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
        spans = sdk_spans(5)
        assert exporter.export(spans) is SpanExportResult.SUCCESS  # connected before the attack
        rss_before = rss_bytes(col.proc.pid)
        loop = asyncio.new_event_loop()
        try:
            flood = loop.run_until_complete(attack("127.0.0.1", grpc_port, STREAMS, DEFAULT_MAX_CONCURRENT_STREAMS,
                                                   IDLE_CONNECTIONS))
            # Streams: never more than max_concurrent_streams live on a connection; the one sent past the
            # limit is refused (RST_STREAM REFUSED_STREAM), and a paced attack holds all the others.
            for c in flood.stream_connections:
                assert c.held, "a stream connection was refused: max_connections is smaller than assumed"
                assert c.streams_sent == DEFAULT_MAX_CONCURRENT_STREAMS + 1
                assert c.refused_streams + c.reset_streams + sum(c.ended_streams.values()) >= 1
                assert c.settings[0x3] == DEFAULT_MAX_CONCURRENT_STREAMS
            assert flood.streams_refused() >= 1
            held = flood.streams_held()
            assert held >= STREAMS // 2, f"only {held} streams held: the attack did not happen"
            # Connections: at most max_connections (auto: a quarter of ulimit -n) open, the SDK's included.
            held_connections = sum(c.held for c in flood.connections)
            assert held_connections <= AUTO_MAX_CONNECTIONS - 1
            assert len(flood.connections) - held_connections >= len(flood.connections) - AUTO_MAX_CONNECTIONS
            rss_during = rss_bytes(col.proc.pid)
            # Memory: what the streams cost is bounded per stream, and the collector stays under the
            # memory_limiter's soft limit (limit_mib less its default 20 % spike_limit) ...
            assert rss_during - rss_before <= held * STREAM_KIB * 1024, (rss_before, rss_during, held)
            assert rss_during < (LIMIT_MIB - LIMIT_MIB // 5) * 2**20, (rss_before, rss_during)
            # ... so the client that was connected before the attack is served all along, never refused.
            for _ in range(5):
                assert exporter.export(spans) is SpanExportResult.SUCCESS
            assert col.metric("otelcol_processor_refused_spans_total") == 0
            assert col.metric("otelcol_receiver_refused_spans_total") == 0
            assert col.metric("otelcol_receiver_accepted_spans_total") == 30
            # No fairness: the attacker holds every other connection slot, so a client that connects only
            # now is refused (docs/components/receivers/otlp.md: sizing max_connections).
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                new_client_export(grpc_port, timeout=3)
            assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            for c in flood.idle_connections:  # the idle connections leave: new clients are served again
                c.close()
            loop.run_until_complete(asyncio.sleep(0.5))  # (the sockets close when the loop runs)
            new_client_export(grpc_port, timeout=30, wait_for_ready=True)
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        finally:
            flood.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
            exporter.shutdown()
        assert col.proc.poll() is None  # it did not fall over
    finally:
        col.stop()
