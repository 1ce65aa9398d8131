"""CORS on the OTLP/HTTP receiver: preflights answered as the OTel Collector (rs/cors) answers them, and
posts from an allowed origin carrying the headers a browser needs. A real aiohttp server and client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from collector.config import decode
from collector.receivers.otlp.config import CORSConfig, OTLPReceiverConfig
from collector.receivers.otlp.cors import CORSPolicy
from tests.collector.receivers.test_otlp_support import RecordingConsumer, make_request, running

CORS = {"allowed_origins": ["https://app.example.com", "http://*.shop.test"], "allowed_headers": ["X-Tenant"],
        "exposed_headers": ["X-Trace"], "max_age": 7200}

Setup = tuple[aiohttp.ClientSession, str, RecordingConsumer]


def config(cors: object) -> OTLPReceiverConfig:
    return decode(OTLPReceiverConfig, {"protocols": {"http": {"endpoint": "127.0.0.1:0", "cors": cors}}})


@pytest.fixture
async def cors_setup() -> AsyncIterator[Setup]:
    async with running(config(CORS)) as (rcv, consumer), aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{rcv.http_port}/v1/traces", consumer


async def preflight(session: aiohttp.ClientSession, url: str, origin: str, method: str = "POST",
                    headers: str = "content-type") -> tuple[int, dict[str, str]]:
    async with session.options(url, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                             "Access-Control-Request-Headers": headers}) as r:
        return r.status, dict(r.headers)


async def test_preflight_from_an_allowed_origin(cors_setup: Setup) -> None:
    session, url, _ = cors_setup
    status, headers = await preflight(session, url, "https://app.example.com", headers="Content-Type, X-Tenant")
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Allow-Methods"] == "POST"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type, X-Tenant"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Max-Age"] == "7200"
    status, headers = await preflight(session, url, "http://web.shop.test")  # the wildcard pattern
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "http://web.shop.test"


@pytest.mark.parametrize(("origin", "method", "headers"), [
    ("https://evil.example", "POST", "content-type"),  # origin not allowed
    ("https://app.example.com", "DELETE", "content-type"),  # method not allowed
    ("https://app.example.com", "POST", "x-other"),  # header not allowed
])
async def test_preflight_refused_without_cors_headers(cors_setup: Setup, origin: str, method: str,
                                                      headers: str) -> None:
    session, url, _ = cors_setup
    status, got = await preflight(session, url, origin, method, headers)
    assert status == 204
    assert "Access-Control-Allow-Origin" not in got


async def test_post_from_an_allowed_origin_is_accepted_with_cors_headers(cors_setup: Setup) -> None:
    session, url, consumer = cors_setup
    body = make_request(3).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", "Origin": "https://app.example.com"}
    async with session.post(url, data=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert r.headers["Access-Control-Expose-Headers"] == "X-Trace"
        assert "Origin" in r.headers.getall("Vary")
    assert consumer.span_count == 3
    async with session.post(url, data=body, headers={**headers, "Origin": "https://evil.example"}) as r:
        assert r.status == 200  # CORS is the browser's check; the server only withholds the headers
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_without_cors_a_preflight_is_not_answered() -> None:
    async with running(config(None)) as (rcv, _), aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{rcv.http_port}/v1/traces"
        status, headers = await preflight(session, url, "https://app.example.com")
    assert status == 405 and "Access-Control-Allow-Origin" not in headers


def test_policy_matches_like_rs_cors() -> None:
    policy = CORSPolicy(CORSConfig(allowed_origins=("http://*", "https://*.b.test")))
    assert policy.origin_allowed("http://localhost:3000")
    assert policy.origin_allowed("HTTPS://x.B.test")
    assert not policy.origin_allowed("https://b.test")
    assert policy.headers_allowed("Accept, Content-Type, X-Requested-With")  # implicit when none listed
    assert not policy.headers_allowed("X-Custom")
    assert CORSPolicy(CORSConfig(allowed_origins=("*",), allowed_headers=("*",))).headers_allowed("X-Anything")
    assert CORSPolicy(CORSConfig(allowed_origins=("*",))).origin_allowed("https://anywhere.test")
