"""TLS on every listener (the OTLP gRPC and HTTP receivers, health_check): handshakes against a test CA,
mutual TLS (a client without a certificate is refused), min_version 1.3 on HTTP (a TLS 1.2-only client is
refused), and certificate rotation: files replaced while running, new handshakes see the new certificate."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest

from collector.component import ComponentID, Host, Kind, Settings
from collector.config import decode
from collector.config.tls import TLSServerConfig
from collector.extensions import health_check
from collector.receivers.otlp import GRPCConfig, HTTPConfig, OTLPReceiverConfig, ProtocolsConfig, factory
from collector.telemetry import Telemetry
from tests.collector.certs import CA, serial_of_der
from tests.collector.receivers.test_otlp_support import TRACE_EXPORT, RecordingConsumer, make_request, make_settings


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA.create(tmp_path / "ca")


class Files:
    """A server certificate and key on disk, and a client certificate signed by the same CA."""

    def __init__(self, ca: CA, directory: Path) -> None:
        self.ca = ca
        self.cert, self.key = directory / "server.pem", directory / "server.key"
        self.serial = ca.issue(self.cert, self.key).serial_number
        self.client_cert, self.client_key = directory / "client.pem", directory / "client.key"
        ca.issue(self.client_cert, self.client_key, "agent", client=True)
        self._dir = directory

    def tls(self, **extra: Any) -> TLSServerConfig:
        return decode(TLSServerConfig, {"cert_file": str(self.cert), "key_file": str(self.key), **extra})

    def rotate(self) -> int:
        """Replace the certificate and key (renamed over the old files, as a secret mount does)."""
        new_cert, new_key = self._dir / "next.pem", self._dir / "next.key"
        serial = self.ca.issue(new_cert, new_key).serial_number
        os.replace(new_key, self.key)
        os.replace(new_cert, self.cert)
        self.serial = serial
        return serial


@pytest.fixture
def files(ca: CA, tmp_path: Path) -> Files:
    return Files(ca, tmp_path)


def client_context(files: Files, *, cert: bool = False, max_version: ssl.TLSVersion | None = None,
                   alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(files.ca.pem))
    if cert:
        ctx.load_cert_chain(files.client_cert, files.client_key)
    if max_version is not None:
        ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


async def served_serial(port: int, ctx: ssl.SSLContext) -> int:
    """The serial number of the certificate a new handshake on ``port`` is served."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return serial_of_der(der)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


async def https_get(url: str, ctx: ssl.SSLContext, method: str = "GET") -> int:
    async with aiohttp.ClientSession() as session, session.request(
            method, url, ssl=ctx, data=make_request(1).SerializeToString() if method == "POST" else None,
            headers={"Content-Type": "application/x-protobuf"}, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        await resp.read()
        return resp.status


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def reloads(telemetry: Telemetry, listener: str, result: str = "ok") -> float:
    return telemetry.registry.get_sample_value("tracetriage_tls_certificate_reloads_total",
                                               {"listener": listener, "result": result}) or 0.0


@asynccontextmanager
async def receiver(grpc_tls: TLSServerConfig | None, http_tls: TLSServerConfig | None,
                   telemetry: Telemetry | None = None) -> AsyncIterator[Any]:
    config = OTLPReceiverConfig(protocols=ProtocolsConfig(
        grpc=GRPCConfig(endpoint="127.0.0.1:0", tls=grpc_tls) if grpc_tls is not None else None,
        http=HTTPConfig(endpoint="127.0.0.1:0", tls=http_tls) if http_tls is not None else None))
    rcv = factory.create(make_settings(telemetry or Telemetry()), config, RecordingConsumer())
    await rcv.start(Host())
    try:
        yield rcv
    finally:
        await rcv.shutdown()


@asynccontextmanager
async def health(tls: TLSServerConfig, telemetry: Telemetry | None = None) -> AsyncIterator[Any]:
    host = Host()
    host.ready = True
    settings = Settings(ComponentID("health_check"), Kind.EXTENSION, telemetry or Telemetry(), logging.getLogger("hc"))
    hc = health_check.factory.create(settings, health_check.HealthCheckConfig(endpoint="127.0.0.1:0", tls=tls))
    await hc.start(host)
    try:
        yield hc
    finally:
        await hc.shutdown()


async def grpc_export(port: int, files: Files, *, cert: bool) -> grpc.StatusCode:
    creds = grpc.ssl_channel_credentials(
        root_certificates=files.ca.pem.read_bytes(),
        private_key=files.client_key.read_bytes() if cert else None,
        certificate_chain=files.client_cert.read_bytes() if cert else None)
    async with grpc.aio.secure_channel(f"localhost:{port}", creds) as channel:
        try:
            await channel.unary_unary(TRACE_EXPORT)(make_request(1).SerializeToString(), timeout=10)
        except grpc.aio.AioRpcError as e:
            return e.code()
    return grpc.StatusCode.OK


# -- handshakes and mutual TLS -------------------------------------------------------------------------------


async def test_http_receiver_tls_and_mtls(files: Files) -> None:
    async with receiver(None, files.tls()) as rcv:
        assert await https_get(f"https://localhost:{rcv.http_port}/v1/traces", client_context(files), "POST") == 200
    async with receiver(None, files.tls(client_ca_file=str(files.ca.pem))) as rcv:
        url = f"https://localhost:{rcv.http_port}/v1/traces"
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await https_get(url, client_context(files), "POST")
        assert await https_get(url, client_context(files, cert=True), "POST") == 200


async def test_grpc_receiver_tls_and_mtls(files: Files) -> None:
    async with receiver(files.tls(), None) as rcv:
        assert await grpc_export(rcv.grpc_port, files, cert=False) is grpc.StatusCode.OK
    async with receiver(files.tls(client_ca_file=str(files.ca.pem)), None) as rcv:
        assert await grpc_export(rcv.grpc_port, files, cert=False) is grpc.StatusCode.UNAVAILABLE
        assert await grpc_export(rcv.grpc_port, files, cert=True) is grpc.StatusCode.OK


async def test_health_check_tls_and_mtls(files: Files) -> None:
    async with health(files.tls()) as hc:
        assert await https_get(f"https://localhost:{hc.port}/", client_context(files)) == 200
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to a TLS listener
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{hc.port}/", timeout=aiohttp.ClientTimeout(total=10)) as resp:
                await resp.read()
    async with health(files.tls(client_ca_file=str(files.ca.pem))) as hc:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await https_get(f"https://localhost:{hc.port}/", client_context(files))
        assert await https_get(f"https://localhost:{hc.port}/", client_context(files, cert=True)) == 200


@pytest.mark.parametrize("listener", ["otlp http", "health_check"])
async def test_min_version_13_refuses_a_tls12_client(files: Files, listener: str) -> None:
    tls = files.tls(min_version="1.3")
    context = receiver(None, tls) if listener == "otlp http" else health(tls)
    async with context as server:
        port = server.http_port if listener == "otlp http" else server.port
        with pytest.raises((ssl.SSLError, ConnectionError)):  # an alert, or the connection closed
            await served_serial(port, client_context(files, max_version=ssl.TLSVersion.TLSv1_2))
        assert await served_serial(port, client_context(files)) == files.serial  # TLS 1.3 is served
    context = receiver(None, files.tls()) if listener == "otlp http" else health(files.tls())
    async with context as server:  # the default, 1.2, serves that client
        port = server.http_port if listener == "otlp http" else server.port
        assert await served_serial(port, client_context(files, max_version=ssl.TLSVersion.TLSv1_2)) == files.serial


def test_grpc_min_version_13_is_refused_in_config() -> None:
    from collector.config import ConfigError

    with pytest.raises(ConfigError, match=r'"1\.3" cannot be enforced on gRPC'):
        decode(GRPCConfig, {"tls": {"cert_file": "c", "key_file": "k", "min_version": "1.3"}})


# -- rotation ------------------------------------------------------------------------------------------------


async def test_http_receiver_certificate_rotation(files: Files) -> None:
    telemetry = Telemetry()
    async with receiver(None, files.tls(reload_interval="100ms"), telemetry) as rcv:
        first = files.serial
        assert await served_serial(rcv.http_port, client_context(files)) == first
        second = files.rotate()

        async def new_cert() -> bool:
            return await served_serial(rcv.http_port, client_context(files)) == second

        await eventually(new_cert, "the rotated certificate on the HTTP receiver")
        assert await https_get(f"https://localhost:{rcv.http_port}/v1/traces", client_context(files), "POST") == 200
        assert reloads(telemetry, "receiver otlp (http)") >= 1


async def test_grpc_receiver_certificate_rotation(files: Files) -> None:
    telemetry = Telemetry()
    async with receiver(files.tls(reload_interval="100ms"), None, telemetry) as rcv:
        h2 = client_context(files, alpn=["h2"])
        assert await served_serial(rcv.grpc_port, h2) == files.serial
        second = files.rotate()

        async def new_cert() -> bool:
            return await served_serial(rcv.grpc_port, client_context(files, alpn=["h2"])) == second

        await eventually(new_cert, "the rotated certificate on the gRPC receiver")
        assert await grpc_export(rcv.grpc_port, files, cert=False) is grpc.StatusCode.OK
        assert reloads(telemetry, "receiver otlp (grpc)") >= 1


async def test_health_check_certificate_rotation_and_a_bad_file(files: Files) -> None:
    telemetry = Telemetry()
    async with health(files.tls(reload_interval="100ms"), telemetry) as hc:
        first = files.serial
        files.key.write_text("not a key\n")  # a broken file: counted, the certificate in force stays

        async def failure_counted() -> bool:
            return reloads(telemetry, "extension health_check", "failed") >= 1

        await eventually(failure_counted, "the failed reload to be counted")
        assert await served_serial(hc.port, client_context(files)) == first
        second = files.rotate()

        async def new_cert() -> bool:
            return await served_serial(hc.port, client_context(files)) == second

        await eventually(new_cert, "the rotated certificate on health_check")
        assert reloads(telemetry, "extension health_check") >= 1


async def test_without_reload_interval_the_certificate_stays(files: Files) -> None:
    async with receiver(None, files.tls()) as rcv:
        first = files.serial
        files.rotate()
        await asyncio.sleep(0.5)
        assert await served_serial(rcv.http_port, client_context(files)) == first
