"""The ``otlp`` receiver: an OTLP/gRPC server and an OTLP/HTTP server feeding one next consumer."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable

from collector.auth import AuthConfig, ServerAuthenticator, server_authenticator
from collector.component import Host, Settings
from collector.consumer import TracesConsumer
from collector.errors import ComponentStartError
from collector.receivers.otlp.config import OTLPReceiverConfig, ProtocolsConfig
from collector.receivers.otlp.grpc_server import GRPCServer
from collector.receivers.otlp.handler import ExportHandler
from collector.receivers.otlp.http_server import HTTPServer

SHUTDOWN_GRACE = 5.0
"""Seconds that in-flight requests get to finish at shutdown."""


class OTLPReceiver:
    """Serves the protocols enabled in config. After ``start()``, ``grpc_port`` / ``http_port`` hold
    the bound ports (useful with port 0), or None for a protocol that is not enabled or not started.
    """

    def __init__(
        self,
        settings: Settings,
        config: OTLPReceiverConfig,
        next_consumer: TracesConsumer,
        *,
        shutdown_grace: float = SHUTDOWN_GRACE,
    ) -> None:
        self.settings = settings
        self.config = config
        self._grace = shutdown_grace
        handler = ExportHandler(settings, next_consumer)
        protocols: ProtocolsConfig = config.protocols
        grpc_cfg, http_cfg = protocols.grpc, protocols.http
        self._grpc = (GRPCServer(grpc_cfg, handler, settings.logger, settings.telemetry, str(settings.id))
                      if grpc_cfg is not None else None)
        self._http = (HTTPServer(http_cfg, handler, settings.logger, settings.telemetry, str(settings.id))
                      if http_cfg is not None else None)
        self._grpc_endpoint = grpc_cfg.endpoint if grpc_cfg is not None else ""
        self._http_endpoint = http_cfg.endpoint if http_cfg is not None else ""
        self._started = False

    @property
    def grpc_port(self) -> int | None:
        return self._grpc.port if self._grpc is not None else None

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http is not None else None

    async def start(self, host: Host) -> None:
        """Bind every enabled protocol; on failure close what was bound and raise ComponentStartError."""
        if self._started:
            return
        self._started = True
        protocols = self.config.protocols
        try:
            if self._grpc is not None:
                auth = self._authenticator(host, protocols.grpc.auth if protocols.grpc is not None else None, "grpc")
                await self._start_one(f"grpc {self._grpc_endpoint}", self._grpc.start(auth))
            if self._http is not None:
                auth = self._authenticator(host, protocols.http.auth if protocols.http is not None else None, "http")
                await self._start_one(f"http {self._http_endpoint}", self._http.start(self._grace, auth))
        except ComponentStartError:
            await self.shutdown()
            raise

    def _authenticator(self, host: Host, auth: AuthConfig | None, protocol: str) -> ServerAuthenticator | None:
        if auth is None:
            return None
        return server_authenticator(host, auth, f"receiver {self.settings.id} ({protocol})")

    async def _start_one(self, what: str, starting: Awaitable[int]) -> None:
        try:
            await starting
        except (OSError, ssl.SSLError, ValueError, RuntimeError) as e:
            raise ComponentStartError(f"receiver {self.settings.id} ({what})", e) from e

    async def shutdown(self) -> None:
        """Idempotent, safe before start: stop accepting, let in-flight requests finish, close."""
        stops = []
        if self._grpc is not None:
            stops.append(self._grpc.stop(self._grace))
        if self._http is not None:
            stops.append(self._http.stop())
        await asyncio.gather(*stops)
