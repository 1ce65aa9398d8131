"""The health_check extension: readiness, fatal errors, custom path and bodies, start failures."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from collector import ComponentID, Host, Kind, Settings, Telemetry
from collector.config import ConfigError, decode
from collector.errors import ComponentStartError
from collector.extensions.health_check import HealthCheckConfig, HealthCheckExtension, factory, parse_endpoint

Start = Callable[..., Awaitable[HealthCheckExtension]]


def settings() -> Settings:
    return Settings(
        id=ComponentID("health_check"), kind=Kind.EXTENSION, telemetry=Telemetry(),
        logger=logging.getLogger("test.health_check"),
    )


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[HealthCheckExtension] = []

    async def _start(host: Host, **cfg: object) -> HealthCheckExtension:
        config = decode(HealthCheckConfig, {"endpoint": "127.0.0.1:0", **cfg})
        ext = factory.create(settings(), config)
        assert isinstance(ext, HealthCheckExtension)
        started.append(ext)
        await ext.start(host)
        return ext

    yield _start
    for ext in started:
        await ext.shutdown()


async def get(ext: HealthCheckExtension, path: str = "/") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{ext.port}{path}") as resp:
        return resp.status, await resp.text()


def test_config_defaults_and_validation() -> None:
    cfg = decode(HealthCheckConfig, {})
    assert (cfg.endpoint, cfg.path, cfg.response_body) == ("localhost:13133", "/", None)
    cfg = decode(HealthCheckConfig, {"check_collector_pipeline": {"enabled": True, "interval": "5m"}})
    assert cfg.check_collector_pipeline is not None
    for bad in ("localhost", "localhost:http", "host:70000", "::1:80"):
        with pytest.raises(ConfigError) as info:
            decode(HealthCheckConfig, {"endpoint": bad}, "extensions.health_check")
        assert info.value.issues[0].path == "extensions.health_check.endpoint"
    with pytest.raises(ConfigError):
        decode(HealthCheckConfig, {"path": "health"})
    assert parse_endpoint(":13133") == ("0.0.0.0", 13133)
    assert parse_endpoint("[::1]:80") == ("::1", 80)


async def test_unavailable_until_ready_then_available(start: Start) -> None:
    host = Host()
    ext = await start(host)
    assert ext.port
    status, body = await get(ext)
    assert (status, body) == (503, '{"status": "Server not available"}')
    host.ready = True
    status, body = await get(ext)
    assert status == 200
    doc = json.loads(body)
    assert doc["status"] == "Server available"
    assert doc["upSince"].endswith("Z")
    assert doc["uptime"].endswith("s")


async def test_unavailable_after_fatal_error(start: Start) -> None:
    host = Host()
    host.ready = True
    ext = await start(host)
    assert (await get(ext))[0] == 200
    host.report_fatal_error(RuntimeError("exporter died"))
    assert (await get(ext))[0] == 503


async def test_custom_path_and_bodies(start: Start) -> None:
    host = Host()
    ext = await start(host, path="/health/status", response_body={"healthy": "ok", "unhealthy": "not yet"})
    assert await get(ext, "/health/status") == (503, "not yet")
    host.ready = True
    assert await get(ext, "/health/status") == (200, "ok")
    assert (await get(ext, "/"))[0] == 404


async def test_port_in_use_fails_to_start(start: Start) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ComponentStartError) as info:
            await start(Host(), endpoint=f"127.0.0.1:{port}")
        assert info.value.component == "health_check"


async def test_shutdown_is_idempotent_and_safe_before_start() -> None:
    ext = factory.create(settings(), decode(HealthCheckConfig, {"endpoint": "127.0.0.1:0"}))
    await ext.shutdown()
    await ext.start(Host())
    port = ext.port
    await ext.shutdown()
    await ext.shutdown()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/")
