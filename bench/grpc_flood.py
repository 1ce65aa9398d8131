"""Idle gRPC streams and connections, opened the way an attacker does: ``python -m bench.grpc_flood``.

Raw HTTP/2 (hyperframe and hpack, no gRPC client): each attacking connection sends the preface and
SETTINGS, acknowledges the server's SETTINGS (so that its ``SETTINGS_MAX_CONCURRENT_STREAMS`` is in force),
then HEADERS for ``TraceService/Export`` with ``content-type: application/grpc`` on ``streams`` streams
and never the request (or, with ``partial``, the first bytes of it). It does not stop at the advertised
limit, as a client library would: it sends one stream more, which the server must refuse. Idle
connections send the preface and SETTINGS and nothing else.

The benchmark starts a collector under ``ulimit -n 1024`` (``memory_limiter`` at ``limit_mib: 1024``),
connects an OTel SDK exporter, then opens ``--streams`` idle streams (``max_concurrent_streams`` + 1 per
connection) and ``--idle-connections`` idle connections, and prints one JSON line: the collector's RSS
before and during the attack, streams held and refused, connections held and refused, the SDK client's
export latency during the attack, and the memory_limiter's refusals. With ``--read-timeout 20s
--wait-cut 20`` it then waits for read_timeout to end the streams (counted in /metrics) and opens a second
wave of as many, to show that their memory is reused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hpack import Decoder, Encoder
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from bench.harness import Collector, emit, free_port

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
REFUSED_STREAM = 0x7
MAX_CONCURRENT_STREAMS = 0x3
OPEN_FILES = 1024


@dataclass
class RawConnection:
    """One attacking HTTP/2 connection and what the server told it."""

    writer: asyncio.StreamWriter | None = None
    settings: dict[int, int] = field(default_factory=dict)
    streams_sent: int = 0
    refused_streams: int = 0  # RST_STREAM(REFUSED_STREAM)
    reset_streams: int = 0  # any other RST_STREAM
    ended_streams: dict[str, int] = field(default_factory=dict)  # grpc-status of trailers -> count
    goaway: bool = False
    closed: bool = False  # the server closed the TCP connection
    _reader: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return bool(self.settings) and not self.closed

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.writer is not None:
            self.writer.transport.abort()


async def _read_frames(conn: RawConnection, reader: asyncio.StreamReader, got_settings: asyncio.Event) -> None:
    decoder = Decoder()
    try:
        while True:
            header = await reader.readexactly(9)
            frame, length = Frame.parse_frame_header(memoryview(header))
            frame.parse_body(memoryview(await reader.readexactly(length)))
            assert conn.writer is not None
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                conn.settings.update(frame.settings)
                conn.writer.write(SettingsFrame(0, flags=["ACK"]).serialize())
                got_settings.set()
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                conn.writer.write(PingFrame(0, flags=["ACK"], opaque_data=frame.opaque_data).serialize())
            elif isinstance(frame, RstStreamFrame):
                if frame.error_code == REFUSED_STREAM:
                    conn.refused_streams += 1
                else:
                    conn.reset_streams += 1
            elif isinstance(frame, HeadersFrame):  # every block decoded, in order: hpack's table is shared
                fields: dict[object, object] = dict(decoder.decode(frame.data, raw=False))
                if "END_STREAM" in frame.flags:
                    status = str(fields.get("grpc-status", "?"))
                    conn.ended_streams[status] = conn.ended_streams.get(status, 0) + 1
            elif isinstance(frame, GoAwayFrame):
                conn.goaway = True
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        conn.closed = True
        got_settings.set()


async def open_connection(host: str, port: int, streams: int = 0, partial: bool = False,
                          settings_timeout: float = 10.0) -> RawConnection:
    """Connect, exchange SETTINGS, then open ``streams`` streams that never send their request (with
    ``partial``: 5 bytes of gRPC framing announcing 100 bytes, and 10 of them). A connection the server
    closes before its SETTINGS comes back with ``closed`` set and no streams."""
    conn = RawConnection()
    got_settings = asyncio.Event()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        conn.closed = True
        return conn
    conn.writer = writer
    writer.write(PREFACE + SettingsFrame(0, settings={}).serialize())
    conn._reader = asyncio.ensure_future(_read_frames(conn, reader, got_settings))
    try:
        await asyncio.wait_for(got_settings.wait(), settings_timeout)
    except TimeoutError:
        conn.closed = True
    if conn.closed or not streams:
        return conn
    conn.streams_sent = streams
    encoder = Encoder()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", EXPORT_PATH),
               (":authority", f"{host}:{port}"), ("content-type", "application/grpc"), ("te", "trailers")]
    for i in range(streams):
        stream_id = 2 * i + 1
        writer.write(HeadersFrame(stream_id, data=encoder.encode(headers), flags=["END_HEADERS"]).serialize())
        if partial:
            writer.write(DataFrame(stream_id, data=b"\x00\x00\x00\x00\x64" + b"\x0a" * 10).serialize())
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
    return conn


@dataclass
class Attack:
    stream_connections: list[RawConnection]
    idle_connections: list[RawConnection]

    @property
    def connections(self) -> list[RawConnection]:
        return self.stream_connections + self.idle_connections

    def streams_held(self) -> int:
        return sum(max(0, c.streams_sent - c.refused_streams - c.reset_streams
                       - sum(c.ended_streams.values())) for c in self.stream_connections if c.held)

    def streams_refused(self) -> int:
        return sum(c.refused_streams for c in self.stream_connections)

    def close(self) -> None:
        for c in self.connections:
            c.close()

    def streams_sent(self) -> int:
        return sum(c.streams_sent for c in self.stream_connections)


async def attack(host: str, port: int, streams: int, per_connection: int, idle_connections: int,
                 partial: bool = False, batch: int = 4, pause: float = 0.2) -> Attack:
    """``streams`` idle streams opened ``per_connection`` + 1 at a time (one more than the server allows),
    then ``idle_connections`` connections with no stream. ``batch`` stream connections are opened at once,
    then a ``pause``: gRPC cancels calls that arrive faster than the server takes them up (beyond
    ``grpc.server.max_pending_requests``), so a burst holds fewer streams than a paced attack."""
    n = -(-streams // per_connection)
    stream_conns: list[RawConnection] = []
    for start in range(0, n, batch):
        part = await asyncio.gather(*(open_connection(host, port, per_connection + 1, partial)
                                      for _ in range(start, min(n, start + batch))))
        stream_conns += part
        await asyncio.sleep(pause)
    idle: list[RawConnection] = []
    for start in range(0, idle_connections, 50):
        idle += await asyncio.gather(*(open_connection(host, port, settings_timeout=5.0)
                                       for _ in range(start, min(idle_connections, start + 50))))
    await asyncio.sleep(1.0)  # the server's answers to the last streams (refusals, closes) come in
    return Attack(stream_conns, idle)


def config(grpc_port: int, metrics_port: int, out: Path, limit_mib: int = 1024,
           read_timeout: str = "5m") -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", read_timeout: {read_timeout}}}
processors:
  memory_limiter: {{check_interval: 250ms, limit_mib: {limit_mib}}}
exporters:
  file: {{path: "{out}", format: proto}}
service:
  telemetry:
    logs: {{level: info}}
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [file]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--idle-connections", type=int, default=2_000)
    parser.add_argument("--exports", type=int, default=20, help="SDK exports timed during the attack")
    parser.add_argument("--read-timeout", default="5m",
                        help="the receiver's read_timeout; with a short one, also wait for the streams to be cut")
    parser.add_argument("--wait-cut", type=float, default=0.0,
                        help="seconds to wait, after the figures, for read_timeout to end the held streams")
    args = parser.parse_args()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    with tempfile.TemporaryDirectory() as tmp:
        grpc_port, metrics_port = free_port(), free_port()
        col = Collector(config(grpc_port, metrics_port, Path(tmp) / "out.bin", read_timeout=args.read_timeout),
                        Path(tmp), metrics_port,
                        open_files=OPEN_FILES)
        try:
            col.wait_ready()
            exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
            memory = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(memory))
            for i in range(10):
                with provider.get_tracer("bench").start_as_current_span(f"span{i}"):
                    pass
            batch = memory.get_finished_spans()
            assert exporter.export(batch) is SpanExportResult.SUCCESS  # connected before the attack
            time.sleep(1.0)
            rss_before = col.rss()

            async def run() -> Attack:
                return await attack("127.0.0.1", grpc_port, args.streams, 100, args.idle_connections)

            loop = asyncio.new_event_loop()
            flood = loop.run_until_complete(run())
            loop.run_until_complete(asyncio.sleep(2.0))
            rss_during = col.rss()
            latencies, failed = [], 0
            for _ in range(args.exports):
                t0 = time.perf_counter()
                if exporter.export(batch) is not SpanExportResult.SUCCESS:
                    failed += 1
                latencies.append(time.perf_counter() - t0)
            held = flood.streams_held()
            cut: dict[str, object] = {}
            if args.wait_cut > 0:
                loop.run_until_complete(asyncio.sleep(args.wait_cut))
                cut = {"read_timeout": args.read_timeout, "streams_held_after_wait": flood.streams_held(),
                       "read_timeouts_counted": col.metric("tracetriage_receiver_grpc_read_timeouts_total"),
                       "rss_after_cut_mb": round(col.rss() / 2**20, 1)}
                # A second wave on the freed slots: the memory of the cut streams is reused, not added.
                flood.close()
                loop.run_until_complete(asyncio.sleep(1.0))
                flood = loop.run_until_complete(run())
                loop.run_until_complete(asyncio.sleep(2.0))
                cut |= {"second_wave_streams_held": flood.streams_held(),
                        "rss_second_wave_mb": round(col.rss() / 2**20, 1)}
            emit({
                "bench": "grpc_flood", "open_files": OPEN_FILES, "streams_sent": flood.streams_sent(),
                "streams_held": held, "streams_refused": flood.streams_refused(),
                "connections_held": sum(c.held for c in flood.connections),
                "connections_refused": sum(not c.held for c in flood.connections),
                "rss_before_mb": round(rss_before / 2**20, 1), "rss_during_mb": round(rss_during / 2**20, 1),
                "rss_per_held_stream_kb": round((rss_during - rss_before) / max(1, held) / 1024, 1),
                "legit_exports": args.exports, "legit_failed": failed,
                "legit_p50_ms": round(statistics.median(latencies) * 1000, 1),
                "legit_max_ms": round(max(latencies) * 1000, 1),
                "memory_limiter_refused_spans": col.metric("otelcol_processor_refused_spans_total"),
                **cut,
            })
            flood.close()
            loop.run_until_complete(asyncio.sleep(0.2))  # the readers end, the sockets close
            exporter.shutdown()
            loop.close()
        finally:
            col.stop()


if __name__ == "__main__":
    main()
