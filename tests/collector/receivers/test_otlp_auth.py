"""The otlp receiver's ``auth``: bearer tokens and Basic credentials checked on gRPC and HTTP, with real
clients (grpc.aio, aiohttp, the OpenTelemetry SDK exporters), refusals counted, a token file rotated live."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import grpc
import grpc.aio
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from bench.grpc_flood import open_connection
from collector.auth import AuthConfig
from collector.component import ComponentID, Host, Kind, Settings
from collector.config import decode
from collector.errors import ComponentStartError
from collector.extensions import basicauth, bearertokenauth, health_check
from collector.receivers.otlp import GRPCConfig, HTTPConfig, OTLPReceiverConfig, ProtocolsConfig, factory
from collector.telemetry import Telemetry
from tests.collector.receivers.test_otlp_grpc import sdk_spans
from tests.collector.receivers.test_otlp_support import TRACE_EXPORT, RecordingConsumer, make_request, make_settings

TOKEN = "s3cret-token-0123456789"


def auth_config(authenticator: str) -> OTLPReceiverConfig:
    auth = AuthConfig(authenticator)
    return OTLPReceiverConfig(protocols=ProtocolsConfig(
        grpc=GRPCConfig(endpoint="127.0.0.1:0", auth=auth), http=HTTPConfig(endpoint="127.0.0.1:0", auth=auth)))


async def extension(factory: Any, config: dict[str, Any], name: str, telemetry: Telemetry, host: Host) -> Any:
    cid = ComponentID.parse(name)
    settings = Settings(cid, Kind.EXTENSION, telemetry, logging.getLogger(f"ext-{name}"))
    ext = factory.create(settings, decode(factory.config_class, config))
    await ext.start(host)
    host.extensions[cid] = ext
    return ext


@asynccontextmanager
async def with_auth(ext_factory: Any, ext_config: dict[str, Any], name: str
                    ) -> AsyncIterator[tuple[Any, Any, Telemetry]]:
    telemetry = Telemetry()
    host = Host()
    ext = await extension(ext_factory, ext_config, name, telemetry, host)
    consumer = RecordingConsumer()
    receiver = factory.create(make_settings(telemetry), auth_config(name), consumer)
    try:
        await receiver.start(host)
        yield receiver, consumer, telemetry
    finally:
        await receiver.shutdown()
        await ext.shutdown()


def failures(telemetry: Telemetry, transport: str, reason: str) -> float:
    return telemetry.registry.get_sample_value(
        "tracetriage_receiver_auth_failures_total",
        {"receiver": "otlp", "transport": transport, "reason": reason}) or 0.0


async def grpc_export(port: int, metadata: tuple[tuple[str, str], ...] | None) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(TRACE_EXPORT)
        try:
            await call(make_request(2).SerializeToString(), metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as e:
            return e.code()
    return grpc.StatusCode.OK


async def http_export(port: int, headers: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/v1/traces", data=make_request(2).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", **headers}) as resp:
        await resp.read()
        return resp


# -- the receiver started through the real lookup ----------------------------------------------------------


@pytest.fixture
async def bearer() -> AsyncIterator[tuple[Any, Any, Telemetry]]:
    async with with_auth(bearertokenauth.factory, {"token": TOKEN}, "bearertokenauth") as setup:
        yield setup


async def test_grpc_none_wrong_right_token(bearer: tuple[Any, Any, Telemetry]) -> None:
    rcv, consumer, telemetry = bearer
    assert await grpc_export(rcv.grpc_port, None) is grpc.StatusCode.UNAUTHENTICATED
    assert await grpc_export(rcv.grpc_port, (("authorization", "Bearer wrong"),)) is grpc.StatusCode.UNAUTHENTICATED
    assert await grpc_export(rcv.grpc_port, (("authorization", TOKEN),)) is grpc.StatusCode.UNAUTHENTICATED  # no scheme
    assert consumer.batches == []
    assert await grpc_export(rcv.grpc_port, (("authorization", f"Bearer {TOKEN}"),)) is grpc.StatusCode.OK
    assert consumer.span_count == 2
    assert failures(telemetry, "grpc", "missing_credentials") == 1
    assert failures(telemetry, "grpc", "invalid_credentials") == 2


async def test_grpc_unauthenticated_stream_refused_at_headers(bearer: tuple[Any, Any, Telemetry]) -> None:
    """Streams with HEADERS and no credentials (and no request, ever) end with UNAUTHENTICATED at once:
    an unauthenticated client holds no stream while it waits."""
    rcv, consumer, telemetry = bearer
    conn = await open_connection("127.0.0.1", rcv.grpc_port, streams=3)
    for _ in range(200):
        if sum(conn.ended_streams.values()) >= 3:
            break
        await asyncio.sleep(0.05)
    assert conn.ended_streams == {str(grpc.StatusCode.UNAUTHENTICATED.value[0]): 3}
    assert failures(telemetry, "grpc", "missing_credentials") == 3
    assert consumer.batches == []
    conn.close()


async def test_grpc_refuses_other_services_too(bearer: tuple[Any, Any, Telemetry]) -> None:
    rcv, _, _ = bearer
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rcv.grpc_port}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"", timeout=10)
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_sdk_grpc_exporter_with_headers(bearer: tuple[Any, Any, Telemetry]) -> None:
    rcv, consumer, _ = bearer
    spans = sdk_spans(3)

    def send(headers: dict[str, str] | None) -> SpanExportResult:
        exporter = GRPCSpanExporter(endpoint=f"127.0.0.1:{rcv.grpc_port}", insecure=True, headers=headers, timeout=10)
        try:
            return exporter.export(spans)
        finally:
            exporter.shutdown()

    assert await asyncio.to_thread(send, None) is SpanExportResult.FAILURE
    assert await asyncio.to_thread(send, {"authorization": "Bearer nope"}) is SpanExportResult.FAILURE
    assert consumer.batches == []
    assert await asyncio.to_thread(send, {"authorization": f"Bearer {TOKEN}"}) is SpanExportResult.SUCCESS
    assert consumer.span_count == 3


async def test_http_none_wrong_right_token(bearer: tuple[Any, Any, Telemetry]) -> None:
    rcv, consumer, telemetry = bearer
    none = await http_export(rcv.http_port, {})
    assert none.status == 401
    assert none.headers["WWW-Authenticate"] == 'Bearer realm="tracetriage"'
    wrong = await http_export(rcv.http_port, {"Authorization": "Bearer wrong"})
    assert wrong.status == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert consumer.batches == []
    right = await http_export(rcv.http_port, {"authorization": f"Bearer {TOKEN}"})
    assert right.status == 200
    assert consumer.span_count == 2
    assert failures(telemetry, "http", "missing_credentials") == 1
    assert failures(telemetry, "http", "invalid_credentials") == 1
    exposition = telemetry.exposition().decode()
    assert 'tracetriage_receiver_auth_failures_total{reason="invalid_credentials",receiver="otlp",transport="http"}' \
        in exposition
    assert TOKEN not in exposition


async def test_sdk_http_exporter_with_headers(bearer: tuple[Any, Any, Telemetry]) -> None:
    rcv, consumer, _ = bearer
    spans = sdk_spans(4)

    def send(headers: dict[str, str] | None) -> SpanExportResult:
        exporter = HTTPSpanExporter(endpoint=f"http://127.0.0.1:{rcv.http_port}/v1/traces", headers=headers,
                                    timeout=10)
        try:
            return exporter.export(spans)
        finally:
            exporter.shutdown()

    assert await asyncio.to_thread(send, None) is SpanExportResult.FAILURE
    assert consumer.batches == []
    assert await asyncio.to_thread(send, {"Authorization": f"Bearer {TOKEN}"}) is SpanExportResult.SUCCESS
    assert consumer.span_count == 4


async def test_custom_header_scheme_and_several_tokens() -> None:
    config = {"header": "X-Api-Key", "scheme": "", "tokens": ["first-token", "second-token"]}
    async with with_auth(bearertokenauth.factory, config, "bearertokenauth/keys") as (rcv, consumer, _):
        assert (await http_export(rcv.http_port, {"Authorization": "Bearer first-token"})).status == 401
        assert (await http_export(rcv.http_port, {"X-Api-Key": "first-token"})).status == 200
        assert (await http_export(rcv.http_port, {"X-Api-Key": "second-token"})).status == 200
        assert await grpc_export(rcv.grpc_port, (("x-api-key", "second-token"),)) is grpc.StatusCode.OK
        assert await grpc_export(rcv.grpc_port, (("x-api-key", "third-token"),)) is grpc.StatusCode.UNAUTHENTICATED
        assert consumer.span_count == 6


async def wait_until(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_token_file_rotated_while_running(tmp_path: Path) -> None:
    token_file = tmp_path / "ingest.token"
    token_file.write_text("old-token-aaaaaaaa\n")
    config = {"filename": str(token_file)}
    async with with_auth(bearertokenauth.factory, config, "bearertokenauth") as (rcv, consumer, telemetry):
        assert (await http_export(rcv.http_port, {"Authorization": "Bearer old-token-aaaaaaaa"})).status == 200
        # Rotate as Kubernetes does: write a new file and rename it over the old one.
        fresh = tmp_path / "ingest.token.new"
        fresh.write_text("\nnew-token-bbbbbbbb\n\n")
        os.replace(fresh, token_file)

        async def new_accepted() -> bool:
            resp = await http_export(rcv.http_port, {"Authorization": "Bearer new-token-bbbbbbbb"})
            return resp.status == 200

        await wait_until(new_accepted, "the new token to be accepted")
        assert (await http_export(rcv.http_port, {"Authorization": "Bearer old-token-aaaaaaaa"})).status == 401
        assert await grpc_export(rcv.grpc_port, (("authorization", "Bearer old-token-aaaaaaaa"),)) \
            is grpc.StatusCode.UNAUTHENTICATED
        assert await grpc_export(rcv.grpc_port, (("authorization", "Bearer new-token-bbbbbbbb"),)) \
            is grpc.StatusCode.OK
        assert telemetry.registry.get_sample_value("tracetriage_auth_token_file_reloads_total",
                                                   {"extension": "bearertokenauth", "result": "ok"}) == 1
        # A file emptied by mistake keeps the tokens in force.
        token_file.write_text("")
        async def failure_counted() -> bool:
            return bool(telemetry.registry.get_sample_value(
                "tracetriage_auth_token_file_reloads_total", {"extension": "bearertokenauth", "result": "failed"}))

        await wait_until(failure_counted, "the failed re-read to be counted")
        assert (await http_export(rcv.http_port, {"Authorization": "Bearer new-token-bbbbbbbb"})).status == 200
        assert consumer.span_count >= 6


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_basic_auth_from_htpasswd_file(tmp_path: Path) -> None:
    sha = base64.b64encode(hashlib.sha1(b"sha-pass").digest()).decode()
    hashed = bcrypt.hashpw(b"bcrypt-pass", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    htpasswd = tmp_path / ".htpasswd"
    htpasswd.write_text(f"# users\nalice:{hashed}\nbob:{{SHA}}{sha}\ncarol:plain-pass\n")
    config = {"htpasswd": {"file": str(htpasswd), "inline": "dave:inline-pass"}}
    async with with_auth(basicauth.factory, config, "basicauth/server") as (rcv, consumer, telemetry):
        for user, password in (("alice", "bcrypt-pass"), ("bob", "sha-pass"), ("carol", "plain-pass"),
                               ("dave", "inline-pass"), ("alice", "bcrypt-pass")):
            assert (await http_export(rcv.http_port, {"Authorization": basic(user, password)})).status == 200, user
        refused = await http_export(rcv.http_port, {"Authorization": basic("alice", "wrong")})
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith('Basic realm="tracetriage"')
        assert (await http_export(rcv.http_port, {"Authorization": basic("mallory", "bcrypt-pass")})).status == 401
        assert (await http_export(rcv.http_port, {"Authorization": "Basic !!!"})).status == 401
        assert (await http_export(rcv.http_port, {"Authorization": f"Bearer {TOKEN}"})).status == 401
        assert await grpc_export(rcv.grpc_port, (("authorization", basic("alice", "bcrypt-pass")),)) \
            is grpc.StatusCode.OK
        assert consumer.span_count == 12
        assert failures(telemetry, "http", "invalid_credentials") == 2
        assert failures(telemetry, "http", "malformed_credentials") == 2


async def test_health_check_stays_unauthenticated(bearer: tuple[Any, Any, Telemetry]) -> None:
    host = Host()
    host.ready = True
    settings = Settings(ComponentID("health_check"), Kind.EXTENSION, Telemetry(), logging.getLogger("hc"))
    hc = health_check.factory.create(settings, decode(health_check.HealthCheckConfig, {"endpoint": "127.0.0.1:0"}))
    await hc.start(host)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{hc.port}/") as resp:
            assert resp.status == 200
    finally:
        await hc.shutdown()


# -- start errors ------------------------------------------------------------------------------------------


async def test_start_fails_for_a_missing_or_wrong_authenticator() -> None:
    telemetry = Telemetry()
    host = Host()
    await extension(basicauth.factory, {"client_auth": {"username": "u", "password": "p"}}, "basicauth/client",
                    telemetry, host)
    settings = Settings(ComponentID("health_check"), Kind.EXTENSION, telemetry, logging.getLogger("hc"))
    host.extensions[ComponentID("health_check")] = health_check.factory.create(
        settings, health_check.HealthCheckConfig())
    for name, expected in (
        ("bearertokenauth/missing", "'bearertokenauth/missing': no such extension is running"),
        ("health_check", "'health_check' cannot authenticate the requests a server receives (it is not a server "
                         "authenticator)"),
        ("basicauth/client", "has no htpasswd to check clients against"),
    ):
        receiver = factory.create(make_settings(telemetry), auth_config(name), RecordingConsumer())
        with pytest.raises(ComponentStartError) as err:
            await receiver.start(host)
        assert expected in str(err.value)
        assert "receiver otlp (grpc)" in str(err.value)
        assert receiver.grpc_port is None and receiver.http_port is None  # nothing left listening
