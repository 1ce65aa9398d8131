"""The OTLP/HTTP listener under hostile clients: real sockets on 127.0.0.1.

Slowloris headers, trickled bodies, idle connections, a connection flood past ``max_connections``,
malformed requests and deeply nested JSON: each is cut or refused, counted, and logged at most once per
interval, and the listener keeps serving.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Any

import aiohttp
import pytest

from collector import otlpjson
from collector.config import ByteSize, Duration
from collector.receivers.otlp import HTTPConfig, OTLPReceiverConfig, ProtocolsConfig
from collector.telemetry import Telemetry
from tests.collector.receivers.test_otlp_support import make_request, running

PROTO = {"Content-Type": "application/x-protobuf"}


def http_only(**options: Any) -> OTLPReceiverConfig:
    return OTLPReceiverConfig(protocols=ProtocolsConfig(http=HTTPConfig(
        endpoint="127.0.0.1:0", max_request_body_size=ByteSize(32 * 1024 * 1024), **options)))


def sample(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, {"receiver": "otlp", **labels}) or 0.0


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent before closing; fails if it does not close within ``within`` seconds."""
    data = b""
    async with asyncio.timeout(within):
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


async def post_ok(port: int) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{port}/v1/traces", data=make_request(1).SerializeToString(), headers=PROTO
    ) as resp:
        assert resp.status == 200


async def test_slowloris_headers_cut() -> None:
    """1,000 connections that send their headers a line at a time are all closed at read_header_timeout."""
    telemetry = Telemetry()
    async with running(http_only(read_header_timeout=Duration(1.0)), telemetry=telemetry) as (rcv, consumer):
        port = rcv.http_port
        conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(1000)))
        started = time.monotonic()
        for _, writer in conns:
            writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            for i in range(20):
                await asyncio.sleep(0.2)
                for _, writer in conns:
                    if not writer.is_closing():
                        writer.write(b"X-Slow-%d: 1\r\n" % i)

        trickling = asyncio.create_task(trickle())
        try:
            await asyncio.gather(*(closed_by_server(reader, 5.0) for reader, _ in conns))
        finally:
            trickling.cancel()
            for _, writer in conns:
                writer.close()
        assert time.monotonic() - started < 5.0
        assert sample(telemetry, "tracetriage_receiver_http_timeouts_total", timeout="read_header") == 1000
        await post_ok(port)
        assert consumer.span_count == 1


async def test_trickled_body_cut_with_408() -> None:
    telemetry = Telemetry()
    async with running(http_only(read_timeout=Duration(0.5)), telemetry=telemetry) as (rcv, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", rcv.http_port)
        writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 1000\r\n\r\n")

        async def trickle() -> None:
            while not writer.is_closing():
                writer.write(b"\x0a")
                await asyncio.sleep(0.2)

        trickling = asyncio.create_task(trickle())
        started = time.monotonic()
        try:
            answer = await closed_by_server(reader, 3.0)
        finally:
            trickling.cancel()
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        assert time.monotonic() - started < 2.0
        assert sample(telemetry, "tracetriage_receiver_http_timeouts_total", timeout="read") == 1


async def test_idle_connection_closed_at_idle_timeout() -> None:
    async with running(http_only(idle_timeout=Duration(0.3), read_header_timeout=Duration(30.0))) as (rcv, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", rcv.http_port)  # never sends a byte
        started = time.monotonic()
        assert await closed_by_server(reader, 3.0) == b""
        assert time.monotonic() - started < 2.0
        writer.close()
        # After a request, a kept-alive connection is closed when idle as long.
        reader, writer = await asyncio.open_connection("127.0.0.1", rcv.http_port)
        body = make_request(1).SerializeToString()
        writer.write(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = await closed_by_server(reader, 3.0)
        assert answer.startswith(b"HTTP/1.1 200 ")
        writer.close()


async def test_connections_past_max_connections_refused(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry()
    caplog.set_level(logging.WARNING)
    async with running(http_only(max_connections=5, read_header_timeout=Duration(30.0)),
                       telemetry=telemetry) as (rcv, consumer):
        port = rcv.http_port
        held = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(5)))
        await asyncio.sleep(0.2)
        assert sample(telemetry, "tracetriage_receiver_http_open_connections") == 5
        extra = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(50)))
        await asyncio.gather(*(closed_by_server(reader, 3.0) for reader, _ in extra))
        assert sample(telemetry, "tracetriage_receiver_http_connections_refused_total") == 50
        warnings = [r for r in caplog.records if "max_connections" in r.getMessage()]
        assert len(warnings) == 1 and "(5)" in warnings[0].getMessage()
        for _, writer in [*held, *extra]:
            writer.close()
        await asyncio.sleep(0.2)
        assert sample(telemetry, "tracetriage_receiver_http_open_connections") == 0
        await post_ok(port)
        assert consumer.span_count == 1


@pytest.mark.parametrize("garbage", [
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 client on the HTTP/1.1 port
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"GET /v1/traces HTTP/1.1\r\nBad Header Line\r\n\r\n",
])
async def test_malformed_requests_counted_and_logged_once(caplog: pytest.LogCaptureFixture, garbage: bytes) -> None:
    telemetry = Telemetry()
    caplog.set_level(logging.DEBUG)
    async with running(http_only(), telemetry=telemetry) as (rcv, consumer):
        for _ in range(100):
            reader, writer = await asyncio.open_connection("127.0.0.1", rcv.http_port)
            writer.write(garbage)
            answer = await closed_by_server(reader, 3.0)
            assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:80]
            writer.close()
        assert sample(telemetry, "tracetriage_receiver_http_malformed_requests_total") == 100
        assert not [r for r in caplog.records if r.exc_info]
        reports = [r for r in caplog.records if "malformed" in r.getMessage()]
        assert len(reports) == 1
        await post_ok(rcv.http_port)
        assert consumer.span_count == 1


async def test_deeply_nested_json_400() -> None:
    depth = 100_000
    body = b'{"resourceSpans": ' + b"[" * depth + b"]" * depth + b"}"
    async with running(http_only()) as (rcv, _), aiohttp.ClientSession() as session:
        for data in (body, b'{"a": ' + b'{"a": ' * depth + b"1" + b"}" * (depth + 1)):
            async with session.post(f"http://127.0.0.1:{rcv.http_port}/v1/traces", data=data,
                                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 400
                assert "nested too deeply" in (await resp.json())["message"]


async def test_large_json_decoded_off_the_event_loop() -> None:
    """A large OTLP/JSON body is decoded in a worker thread: the loop keeps ticking meanwhile."""
    data = otlpjson.encode_request(make_request(20_000))
    assert len(data) > 4 * 1024 * 1024
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with running(http_only()) as (rcv, consumer), aiohttp.ClientSession() as session:
        ticking = asyncio.create_task(ticker())
        started = time.monotonic()
        async with session.post(f"http://127.0.0.1:{rcv.http_port}/v1/traces", data=io.BytesIO(data),
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 200, await resp.text()
        took = time.monotonic() - started
        ticking.cancel()
        assert consumer.span_count == 20_000
        # json.loads is one C call that holds the GIL: the loop's longest pause is its run (a quarter of
        # ``took`` on a quiet machine, more on a busy one since the walk after it got faster), not the
        # whole decode.
        assert max(gaps) < took * 0.8, (max(gaps), took)


async def test_json_ok_below_the_thread_threshold() -> None:
    async with running(http_only()) as (rcv, consumer), aiohttp.ClientSession() as session:
        doc = json.loads(otlpjson.encode_request(make_request(3)))
        async with session.post(f"http://127.0.0.1:{rcv.http_port}/v1/traces", json=doc) as resp:
            assert resp.status == 200
        assert consumer.span_count == 3
