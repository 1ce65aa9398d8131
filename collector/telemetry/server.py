"""The Prometheus ``/metrics`` endpoint of ``service.telemetry.metrics`` (a pull reader or ``address``)."""

from __future__ import annotations

import logging

from aiohttp import web

from collector.config.net import format_address, listen_address
from collector.errors import ComponentStartError
from collector.telemetry.metrics import Telemetry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("tracetriage.service")


class MetricsServer:
    def __init__(self, telemetry: Telemetry, address: str) -> None:
        self._telemetry = telemetry
        self._host, self._port = listen_address(address, "localhost:8888")
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._telemetry.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_port=False)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ComponentStartError("service.telemetry.metrics", f"cannot listen on "
                                      f"{self._host}:{self._port}: {e.strerror or e}") from e
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("Serving metrics on %s/metrics", format_address(self._host, self.port))

    async def shutdown(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
