"""An aiohttp application served on one address, over HTTPS when a server ``tls`` block is given (its
certificate re-read as ``reload_interval`` says): the collector's own endpoints (``/metrics``, the status page,
``health_check``) start and stop through it."""

from __future__ import annotations

import logging

from aiohttp import web

from collector.config.tls import TLSServerConfig
from collector.errors import ComponentStartError
from collector.telemetry import Telemetry
from collector.tls import ReloadingSSLContext, http_listener_tls


class Listener:
    """``component`` names the listener in start errors; ``listener`` labels its certificate reloads."""

    def __init__(self, component: str, host: str, port: int, tls: TLSServerConfig | None, listener: str,
                 logger: logging.Logger, telemetry: Telemetry | None = None) -> None:
        self.component = component
        self.host, self.port = host, port
        self._tls_config = tls
        self._listener = listener
        self._logger = logger
        self._telemetry = telemetry
        self._tls: ReloadingSSLContext | None = None
        self._runner: web.AppRunner | None = None

    @property
    def https(self) -> bool:
        return self._tls_config is not None

    async def start(self, app: web.Application) -> int:
        """Serve ``app``; the port bound (the one asked for, or the system's pick for 0). Raises
        ComponentStartError when the certificate cannot be used or the address cannot be bound."""
        tls = http_listener_tls(self._tls_config, self.component, self._listener, self._logger, self._telemetry)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_port=False,
                           ssl_context=tls.context if tls is not None else None)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ComponentStartError(self.component, f"cannot listen on {self.host}:{self.port}: "
                                                      f"{e.strerror or e}") from e
        self._runner = runner
        if tls is not None:
            tls.start()
            self._tls = tls
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        return self.port

    async def stop(self) -> None:
        tls, self._tls = self._tls, None
        if tls is not None:
            await tls.stop()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
