"""The Prometheus ``/metrics`` endpoint of ``service.telemetry.metrics`` (a pull reader or ``address``), over
HTTPS with ``service.telemetry.metrics.tls``."""

from __future__ import annotations

import logging

from aiohttp import web

from collector.component import Route
from collector.config.net import format_address, listen_address
from collector.config.tls import TLSServerConfig
from collector.errors import ComponentStartError
from collector.telemetry.metrics import Telemetry
from collector.tls import ReloadingSSLContext, http_listener_tls

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("tracetriage.service")


class MetricsServer:
    """``/metrics``, and the GET routes components add to ``routes`` (the service's ``Host.routes``, read per
    request, so routes added while components start are served)."""

    def __init__(self, telemetry: Telemetry, address: str, routes: dict[str, Route] | None = None,
                 tls: TLSServerConfig | None = None) -> None:
        self._telemetry = telemetry
        self._routes = routes if routes is not None else {}
        self._host, self._port = listen_address(address, "localhost:8888")
        self._tls_config = tls
        self._tls: ReloadingSSLContext | None = None
        self._runner: web.AppRunner | None = None
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
        tls = http_listener_tls(self._tls_config, "service.telemetry.metrics",
                                f"telemetry {format_address(self._host, self._port)}", log, self._telemetry)
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/{tail:.*}", self._route)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_port=False,
                           ssl_context=tls.context if tls is not None else None)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ComponentStartError("service.telemetry.metrics", f"cannot listen on "
                                      f"{self._host}:{self._port}: {e.strerror or e}") from e
        self._runner = runner
        if tls is not None:
            tls.start()
            self._tls = tls
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("Serving metrics on %s%s/metrics", "https://" if tls is not None else "",
                 format_address(self._host, self.port))

    async def shutdown(self) -> None:
        tls, self._tls = self._tls, None
        if tls is not None:
            await tls.stop()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
