"""``auth`` on alert_routing's receivers: each notification carries the credentials of the named
authenticator extension (bearer token, Basic), read per request; a missing extension stops the start."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collector import Host, Telemetry
from collector.component import ComponentID, Kind, Settings
from collector.config import decode
from collector.errors import ComponentStartError
from collector.extensions import basicauth, bearertokenauth
from tests.pipelines.alert_routing.helpers import CaptureServer, build, failed_trace, make_failure, write_catalog
from tests.pipelines.alert_routing.test_processor import COMPONENTS, GROUPS, config

TOKEN = "alerts-token-0123456789"


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


async def host_with(*extensions: tuple[Any, dict[str, Any], str]) -> Host:
    host = Host()
    for factory, raw, name in extensions:
        cid = ComponentID.parse(name)
        ext = factory.create(Settings(cid, Kind.EXTENSION, Telemetry(), logging.getLogger(name)),
                             decode(factory.config_class, raw))
        await ext.start(host)
        host.extensions[cid] = ext
    return host


def with_auth(raw: dict[str, Any], receivers: dict[str, str]) -> dict[str, Any]:
    for r in raw["receivers"]:
        if r["name"] in receivers:
            r["auth"] = {"authenticator": receivers[r["name"]]}
    return raw


async def test_webhook_and_pagerduty_send_the_credentials(server: CaptureServer, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, COMPONENTS, GROUPS)
    host = await host_with((bearertokenauth.factory, {"token": TOKEN}, "bearertokenauth/alerts"),
                           (basicauth.factory, {"client_auth": {"username": "pager", "password": "pager-pass"}},
                            "basicauth/pager"))
    raw = with_auth(config(server, catalog, route={"receiver": "hook", "routes": [
        {"matchers": ['team="payments"'], "receiver": "pd", "continue": True},
        {"matchers": ['team="payments"'], "receiver": "hook"}]}),
        {"hook": "bearertokenauth/alerts", "pd": "basicauth/pager"})
    proc = build(raw)
    await proc.start(host)
    try:
        proc.process_traces([failed_trace(make_failure("payment", "charge"))])
        await server.wait_count(1, "/hook")
        await server.wait_count(1, "/pd")
    finally:
        await proc.shutdown()
    hook = next(r for r in server.received if r.path == "/hook")
    page = next(r for r in server.received if r.path == "/pd")
    assert hook.headers["Authorization"] == f"Bearer {TOKEN}"
    assert page.headers["Authorization"] == "Basic " + base64.b64encode(b"pager:pager-pass").decode()


async def test_missing_authenticator_stops_the_start(server: CaptureServer, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, COMPONENTS, GROUPS)
    proc = build(with_auth(config(server, catalog), {"hook": "bearertokenauth/nowhere"}))
    with pytest.raises(ComponentStartError) as err:
        await proc.start(Host())
    await proc.shutdown()
    assert "receiver 'hook'" in str(err.value)
    assert "'bearertokenauth/nowhere': no such extension is running" in str(err.value)
