"""The senders against real gRPC and HTTP servers on 127.0.0.1: counts, retries, rate."""

from __future__ import annotations

import time

import pytest

from bench.loadgen import Generator, load_topology
from bench.loadgen.send import SendOptions, send, traces_url
from tests.bench.loadgen.servers import Received, grpc_server, http_server

SHOP = load_topology()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
async def test_every_trace_arrives(protocol: str) -> None:
    received = Received()
    server = grpc_server if protocol == "grpc" else http_server
    async with server(received) as port:
        gen = Generator(SHOP, seed=3)
        truths: list[str] = []
        stats = await send(gen, SendOptions(endpoint=f"127.0.0.1:{port}", protocol=protocol,  # type: ignore[arg-type]
                                            count=150, concurrency=3, batch_spans=200),
                           on_batch=lambda b: truths.extend(t.trace_id for t in b.truths))
    assert stats.traces == 150 and stats.failed_requests == 0 and stats.retries == 0
    assert stats.spans == received.spans == stats.generated_spans
    assert stats.requests == len(received.requests)
    assert {bytes.fromhex(t) for t in truths} == received.trace_ids
    assert len(received.trace_ids) == 150


async def test_grpc_unavailable_is_retried_after_retry_info() -> None:
    received = Received(fail_first=2, retry_after=0.3)
    async with grpc_server(received) as port:
        stats = await send(Generator(SHOP, seed=1), SendOptions(endpoint=f"127.0.0.1:{port}", count=10,
                                                               concurrency=1, initial_backoff=0.01))
    assert stats.retries == 2 and stats.failed_requests == 0 and stats.traces == 10
    gaps = [b - a for a, b in zip(received.attempts, received.attempts[1:], strict=False)]
    assert gaps[0] >= 0.28 and gaps[1] >= 0.28  # the server's hint, not the 10 ms backoff
    assert len(received.trace_ids) == 10


async def test_http_503_is_retried_after_retry_after() -> None:
    received = Received(fail_first=1, retry_after=1)
    async with http_server(received) as port:
        start = time.monotonic()
        stats = await send(Generator(SHOP, seed=1), SendOptions(endpoint=f"http://127.0.0.1:{port}",
                                                               protocol="http/protobuf", count=5, concurrency=1,
                                                               initial_backoff=0.01))
    assert stats.retries == 1 and stats.traces == 5 and time.monotonic() - start >= 0.95


async def test_gives_up_after_max_retry_time_and_counts_the_failure() -> None:
    received = Received(fail_first=1000)
    async with grpc_server(received) as port:
        stats = await send(Generator(SHOP, seed=1), SendOptions(endpoint=f"127.0.0.1:{port}", count=5,
                                                               concurrency=1, max_retry_time=0.3,
                                                               initial_backoff=0.02))
    assert stats.failed_requests == 1 and stats.traces == 0 and stats.failed_spans == stats.generated_spans
    assert stats.retries >= 2 and "UNAVAILABLE" in stats.last_error


async def test_rate_limit_roughly_holds() -> None:
    received = Received()
    async with grpc_server(received) as port:
        start = time.monotonic()
        stats = await send(Generator(SHOP, seed=2), SendOptions(endpoint=f"127.0.0.1:{port}", rate=4000,
                                                               duration=1.0))
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.0
    assert 2500 <= stats.spans <= 5000, stats.spans
    assert received.spans == stats.spans


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="count of traces or a duration"):
        SendOptions().check()
    with pytest.raises(ValueError, match="rate must be > 0"):
        SendOptions(count=1, rate=0).check()
    assert traces_url("collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("https://x.example/otlp/v1/traces") == "https://x.example/otlp/v1/traces"
