"""``service.telemetry.ui``: off unless present, validated before anything starts, a taken port stops the
start with a message naming it, and the page's listener goes with the service."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from collector.config.schema import ConfigError
from collector.config.service import build_config
from collector.errors import ComponentStartError
from collector.registry import Registry
from collector.service import Service


def raw(telemetry: dict[str, Any]) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"tail_sampling": {"policies": [{"name": "all", "type": "always_sample"}]}},
        "exporters": {"debug": {}},
        "service": {
            "telemetry": {"metrics": {"address": ""}, **telemetry},
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["tail_sampling"], "exporters": ["debug"]}},
        },
    }


def test_off_unless_present_and_defaults_to_the_zpages_port_on_localhost() -> None:
    registry = Registry.default(plugins=False)
    assert build_config(raw({}), registry).service.telemetry.ui is None
    ui = build_config(raw({"ui": None}), registry).service.telemetry.ui
    assert ui is not None and ui.endpoint == "localhost:55679" and float(ui.refresh) == 5.0


def test_bad_values_name_their_key() -> None:
    registry = Registry.default(plugins=False)
    with pytest.raises(ConfigError) as e:
        build_config(raw({"ui": {"endpoint": "no-port-here", "refresh": "-1s", "colour": "blue"}}), registry)
    text = str(e.value)
    assert "service.telemetry.ui.endpoint" in text
    assert "service.telemetry.ui.refresh" in text
    assert "service.telemetry.ui.colour" in text


async def test_served_while_the_service_runs_and_not_when_off() -> None:
    off = Service(build_config(raw({}), Registry.default(plugins=False)))
    off.build()
    await off.start()
    try:
        assert off.status_server is None
    finally:
        await off.shutdown()

    on = Service(build_config(raw({"ui": {"endpoint": "127.0.0.1:0"}}), Registry.default(plugins=False)))
    on.build()
    await on.start()
    assert on.status_server is not None and on.status_server.port
    url = on.status_server.url
    await on.shutdown()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "api/v1/status", timeout=2)  # noqa: ASYNC210 - the port is closed


async def test_a_taken_port_stops_the_start_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = Service(build_config(raw({"ui": {"endpoint": f"127.0.0.1:{port}"}}),
                                       Registry.default(plugins=False)))
        service.build()
        with pytest.raises(ComponentStartError) as e:
            await service.start()
    assert "service.telemetry.ui" in str(e.value) and "cannot listen" in str(e.value)
