"""The Prometheus ``/metrics`` endpoint of ``service.telemetry.metrics`` (a pull reader or ``address``), over
HTTPS with ``service.telemetry.metrics.tls``."""

from __future__ import annotations

import logging

from aiohttp import web

from collector.component import Route
from collector.config.net import format_address, listen_address
from collector.config.tls import TLSServerConfig
from collector.listener import Listener
from collector.telemetry.metrics import Telemetry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("tracetriage.service")


class MetricsServer:
    """``/metrics``, and the GET routes components add to ``routes`` (the service's ``Host.routes``, read per
    request, so routes added while components start are served)."""

    def __init__(self, telemetry: Telemetry, address: str, routes: dict[str, Route] | None = None,
                 tls: TLSServerConfig | None = None) -> None:
        self._telemetry = telemetry
        self._routes = routes if routes is not None else {}
        host, port = listen_address(address, "localhost:8888")
        self._listener = Listener("service.telemetry.metrics", host, port, tls,
                                  f"telemetry {format_address(host, port)}", log, telemetry)
        self.port: int | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._telemetry.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        route = self._routes.get(path)
        if route is not None:
            return await route.handler(request, "")
        for route in self._routes.values():
            prefix = route.prefix
            if prefix != route.path and path.startswith(prefix) and "/" not in path[len(prefix):] \
                    and len(path) > len(prefix):
                return await route.handler(request, path[len(prefix):])
        raise web.HTTPNotFound(text=f"no endpoint {path}; served: /metrics"
                                    + "".join(f", {p}" for p in sorted(self._routes)))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/{tail:.*}", self._route)
        listener = self._listener
        self.port = await listener.start(app)
        log.info("Serving metrics on %s%s/metrics", "https://" if listener.https else "",
                 format_address(listener.host, self.port))

    async def shutdown(self) -> None:
        await self._listener.stop()
