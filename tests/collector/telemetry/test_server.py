"""The telemetry server: /metrics and the GET routes components add through the host."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from collector.component import Host
from collector.telemetry.metrics import Telemetry
from collector.telemetry.server import MetricsServer


async def test_routes_added_after_start_are_served_and_debug_routes_only_when_debug_is_on() -> None:
    host = Host()
    server = MetricsServer(Telemetry(), "127.0.0.1:0", host.routes)
    await server.start()
    try:
        async def hello(request: web.Request, name: str) -> web.Response:
            return web.json_response({"name": name})

        host.add_route("/hello", hello)
        host.add_route("/items/{id}", hello)
        host.add_route("/debug/secret/{id}", hello, debug=True)
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/hello") as r:
                assert r.status == 200 and await r.json() == {"name": ""}
            async with session.get(f"{base}/items/abc") as r:
                assert r.status == 200 and await r.json() == {"name": "abc"}
            for missing in ("/items/", "/items/a/b", "/debug/secret/x", "/nothing"):
                async with session.get(base + missing) as r:
                    assert r.status == 404, missing
                    assert "/metrics" in await r.text()
            async with session.get(f"{base}/metrics") as r:
                assert r.status == 200
        host.debug = True
        host.add_route("/debug/secret/{id}", hello, debug=True)
        async with aiohttp.ClientSession() as session, session.get(f"{base}/debug/secret/x") as r:
            assert r.status == 200
    finally:
        await server.shutdown()


def test_a_route_is_served_once() -> None:
    host = Host()

    async def h(request: web.Request, name: str) -> web.Response:
        return web.Response()

    host.add_route("/a", h)
    try:
        host.add_route("/a", h)
    except ValueError as e:
        assert "/a" in str(e)
    else:
        raise AssertionError("a second /a was accepted")
