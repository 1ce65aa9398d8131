"""``auth`` on the otlp and otlphttp exporters: the authenticator's credentials go out on every request, to
a real otlp receiver that checks them with its own authenticator extension."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collector.auth import AuthConfig
from collector.component import Host
from collector.config import ConfigError, decode
from collector.config.tls import TLSServerConfig
from collector.errors import ComponentStartError, ConsumerError
from collector.exporters import otlp, otlphttp
from collector.extensions import basicauth, bearertokenauth
from collector.receivers.otlp import GRPCConfig, HTTPConfig, OTLPReceiverConfig, ProtocolsConfig, factory
from collector.telemetry import Telemetry
from tests.collector.certs import CA
from tests.collector.exporters import FAST_RETRY, make_batch, make_settings, metric
from tests.collector.receivers.test_otlp_auth import extension
from tests.collector.receivers.test_otlp_support import RecordingConsumer
from tests.collector.receivers.test_otlp_support import make_settings as receiver_settings

TOKEN = "exporter-token-0123456789"
CLIENT_AUTH = {"authenticator": "bearertokenauth/client"}


class Receiving:
    """An otlp receiver (gRPC over TLS, HTTP) that checks credentials with ``bearertokenauth/server``."""

    def __init__(self, host: Host, telemetry: Telemetry, ca: CA, directory: Path) -> None:
        cert, key = directory / "server.pem", directory / "server.key"
        ca.issue(cert, key)
        auth = AuthConfig("bearertokenauth/server")
        tls = TLSServerConfig(cert_file=str(cert), key_file=str(key))
        self.consumer = RecordingConsumer()
        self.telemetry = telemetry
        self.receiver = factory.create(receiver_settings(telemetry), OTLPReceiverConfig(protocols=ProtocolsConfig(
            grpc=GRPCConfig(endpoint="127.0.0.1:0", tls=tls, auth=auth),
            http=HTTPConfig(endpoint="127.0.0.1:0", auth=auth))), self.consumer)
        self.host = host
        self.ca = ca

    def refused(self, transport: str) -> float:
        return self.telemetry.registry.get_sample_value(
            "tracetriage_receiver_auth_failures_total",
            {"receiver": "otlp", "transport": transport, "reason": "invalid_credentials"}) or 0.0


@pytest.fixture
async def receiving(tmp_path: Path) -> AsyncIterator[Receiving]:
    telemetry = Telemetry()
    host = Host()
    server_auth = await extension(bearertokenauth.factory, {"token": TOKEN}, "bearertokenauth/server", telemetry,
                                  host)
    ca = CA.create(tmp_path / "ca")
    setup = Receiving(host, telemetry, ca, tmp_path)
    await setup.receiver.start(host)
    try:
        yield setup
    finally:
        await setup.receiver.shutdown()
        await server_auth.shutdown()


async def exporter_host(config: dict[str, Any], name: str = "bearertokenauth/client") -> tuple[Host, Any]:
    host = Host()
    ext = await extension(bearertokenauth.factory if name.startswith("bearer") else basicauth.factory, config,
                          name, Telemetry(), host)
    return host, ext


async def test_otlphttp_exporter_sends_the_token(receiving: Receiving) -> None:
    host, ext = await exporter_host({"token": TOKEN})
    settings = make_settings("otlphttp")
    config = decode(otlphttp.OTLPHTTPConfig, {
        "endpoint": f"http://127.0.0.1:{receiving.receiver.http_port}", "auth": CLIENT_AUTH,
        "retry_on_failure": FAST_RETRY})
    exporter = otlphttp.factory.create(settings, config)
    await exporter.start(host)
    try:
        await exporter.consume_traces(make_batch(3))
    finally:
        await exporter.shutdown()
        await ext.shutdown()
    assert receiving.consumer.span_count == 3
    assert metric(settings, "otelcol_exporter_sent_spans") == 3


async def test_otlphttp_exporter_with_a_wrong_token_is_refused(receiving: Receiving) -> None:
    host, ext = await exporter_host({"token": "not-the-token"})
    settings = make_settings("otlphttp")
    config = decode(otlphttp.OTLPHTTPConfig, {
        "endpoint": f"http://127.0.0.1:{receiving.receiver.http_port}", "auth": CLIENT_AUTH,
        "retry_on_failure": FAST_RETRY, "sending_queue": {"enabled": False}})
    exporter = otlphttp.factory.create(settings, config)
    await exporter.start(host)
    try:
        with pytest.raises(ConsumerError, match="HTTP 401") as err:
            await exporter.consume_traces(make_batch(2))
        assert "not-the-token" not in str(err.value)
    finally:
        await exporter.shutdown()
        await ext.shutdown()
    assert receiving.consumer.span_count == 0
    assert receiving.refused("http") == 1  # 401 is permanent: not retried


async def test_otlp_grpc_exporter_sends_the_token_over_tls(receiving: Receiving) -> None:
    host, ext = await exporter_host({"token": TOKEN})
    settings = make_settings("otlp")
    config = decode(otlp.OTLPConfig, {
        "endpoint": f"127.0.0.1:{receiving.receiver.grpc_port}", "auth": CLIENT_AUTH,
        "tls": {"ca_file": str(receiving.ca.pem)}, "retry_on_failure": FAST_RETRY})
    exporter = otlp.factory.create(settings, config)
    await exporter.start(host)
    try:
        await exporter.consume_traces(make_batch(4))
    finally:
        await exporter.shutdown()
        await ext.shutdown()
    assert receiving.consumer.span_count == 4
    assert metric(settings, "otelcol_exporter_sent_spans") == 4


async def test_exporter_sends_the_rotated_token(receiving: Receiving, tmp_path: Path) -> None:
    token_file = tmp_path / "client.token"
    token_file.write_text("stale-token-xxxxxxxx\n")
    host, ext = await exporter_host({"filename": str(token_file)})
    settings = make_settings("otlphttp")
    config = decode(otlphttp.OTLPHTTPConfig, {
        "endpoint": f"http://127.0.0.1:{receiving.receiver.http_port}", "auth": CLIENT_AUTH,
        "retry_on_failure": {"enabled": False}, "sending_queue": {"enabled": False}})
    exporter = otlphttp.factory.create(settings, config)
    await exporter.start(host)
    try:
        with pytest.raises(ConsumerError, match="HTTP 401"):
            await exporter.consume_traces(make_batch(1))
        os.replace(_written(tmp_path / "client.token.new", TOKEN + "\n"), token_file)
        deadline = time.monotonic() + 15
        while True:
            try:
                await exporter.consume_traces(make_batch(1))
                break
            except ConsumerError:
                assert time.monotonic() < deadline, "the rotated token was never sent"
                await asyncio.sleep(0.2)
    finally:
        await exporter.shutdown()
        await ext.shutdown()
    assert receiving.consumer.span_count == 1


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_basicauth_client_credentials_sent(tmp_path: Path) -> None:
    telemetry = Telemetry()
    server_host = Host()
    server_auth = await extension(basicauth.factory, {"htpasswd": {"inline": "agent:agent-pass"}},
                                  "basicauth/server", telemetry, server_host)
    consumer = RecordingConsumer()
    receiver = factory.create(receiver_settings(telemetry), OTLPReceiverConfig(protocols=ProtocolsConfig(
        http=HTTPConfig(endpoint="127.0.0.1:0", auth=AuthConfig("basicauth/server")))), consumer)
    await receiver.start(server_host)
    host, ext = await exporter_host({"client_auth": {"username": "agent", "password": "agent-pass"}},
                                    "basicauth/client")
    settings = make_settings("otlphttp")
    exporter = otlphttp.factory.create(settings, decode(otlphttp.OTLPHTTPConfig, {
        "endpoint": f"http://127.0.0.1:{receiver.http_port}", "auth": {"authenticator": "basicauth/client"}}))
    await exporter.start(host)
    try:
        await exporter.consume_traces(make_batch(2))
    finally:
        await exporter.shutdown()
        await ext.shutdown()
        await receiver.shutdown()
        await server_auth.shutdown()
    assert consumer.span_count == 2


async def test_exporter_start_fails_for_a_server_only_authenticator(tmp_path: Path) -> None:
    host, ext = await exporter_host({"htpasswd": {"inline": "u:p"}}, "basicauth/server")
    exporter = otlphttp.factory.create(make_settings("otlphttp"), decode(otlphttp.OTLPHTTPConfig, {
        "endpoint": "http://127.0.0.1:9", "auth": {"authenticator": "basicauth/server"}}))
    with pytest.raises(ComponentStartError, match="has no client_auth credentials to send"):
        await exporter.start(host)
    await exporter.shutdown()
    await ext.shutdown()


def test_grpc_credentials_need_tls() -> None:
    with pytest.raises(ConfigError) as err:
        decode(otlp.OTLPConfig, {"endpoint": "tempo:4317", "tls": {"insecure": True},
                                 "auth": {"authenticator": "bearertokenauth"}})
    assert "auth: credentials are not sent over a connection without TLS" in str(err.value)
