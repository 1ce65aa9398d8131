"""``health_check`` extension: an HTTP endpoint for liveness/readiness probes, as in the OTel Collector.

``GET <path>`` answers 200 ``{"status": "Server available", "upSince": ..., "uptime": ...}`` once the
service is ready (every pipeline started), no component reported a fatal error and none reports a
problem it may recover from (an exporter's persistent queue that cannot be written), else 503
``{"status": "Server not available"}``. ``response_body`` replaces those bodies with fixed strings.
With ``tls`` the endpoint is served over HTTPS (mutual TLS with ``client_ca_file``, the certificate re-read
every ``reload_interval`` when its files change), as confighttp's server ``tls`` upstream.
``check_collector_pipeline`` is accepted for config compatibility and ignored: it is deprecated (and
never worked reliably) in the OTel Collector too.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from collector.component import Factory, Host, Kind, Settings
from collector.config import Duration, field
from collector.config.net import format_address, listen_address, parse_endpoint
from collector.config.tls import TLSServerConfig
from collector.listener import Listener

DEFAULT_ENDPOINT = "localhost:13133"


@dataclass(frozen=True)
class ResponseBodyConfig:
    """Fixed bodies to answer with instead of the JSON status documents."""

    healthy: str = ""
    unhealthy: str = ""


@dataclass(frozen=True)
class CheckCollectorPipelineConfig:
    """Deprecated in the OTel Collector; accepted and ignored here."""

    enabled: bool = False
    interval: Duration = field(Duration(300.0))
    exporter_failure_threshold: int = 5


@dataclass(frozen=True)
class HealthCheckConfig:
    endpoint: str = DEFAULT_ENDPOINT
    path: str = "/"
    response_body: ResponseBodyConfig | None = None
    check_collector_pipeline: CheckCollectorPipelineConfig | None = None
    tls: TLSServerConfig | None = None  # confighttp's: HTTPS, mutual TLS with client_ca_file, reload_interval

    def validate(self) -> Iterator[tuple[str, str]]:
        try:
            parse_endpoint(self.endpoint)
        except ValueError as e:
            yield "endpoint", str(e)
        if not self.path.startswith("/"):
            yield "path", f"must start with '/', got {self.path!r}"


def _go_duration(seconds: float) -> str:
    """A duration as Go prints it, roughly (``1h2m3.5s``), as the OTel Collector reports uptime."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{int(hours)}h" if hours else ""
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + f"{secs:.6g}s"


class HealthCheckExtension:
    """The HTTP server; ``port`` is the bound port after :meth:`start` (useful with port 0)."""

    def __init__(self, settings: Settings, config: HealthCheckConfig) -> None:
        self.id = settings.id
        self._config = config
        self._logger = settings.logger
        self._host: Host | None = None
        self._listener: Listener | None = None
        self._telemetry = settings.telemetry
        self._started_at = time.monotonic()
        self._up_since = dt.datetime.now(dt.UTC)
        self.port: int | None = None

    def healthy(self) -> bool:
        host = self._host
        return host is not None and host.ready and host.fatal_error is None and not host.problems

    async def start(self, host: Host) -> None:
        if self._listener is not None:
            return
        self._host = host
        bind_host, port = listen_address(self._config.endpoint, "localhost:13133")
        listener = Listener(str(self.id), bind_host, port, self._config.tls, f"extension {self.id}", self._logger,
                            self._telemetry)
        app = web.Application()
        app.router.add_get(self._config.path, self._handle)
        self.port = await listener.start(app)
        self._listener = listener
        self._started_at = time.monotonic()
        self._up_since = dt.datetime.now(dt.UTC)
        self._logger.info("Starting health_check extension %s on %s (endpoint %s, path %s%s)", self.id,
                          format_address(bind_host, self.port), self._config.endpoint, self._config.path,
                          ", TLS" if listener.https else "")

    async def shutdown(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        custom = self._config.response_body
        if self.healthy():
            if custom is not None and custom.healthy:
                return web.Response(status=200, text=custom.healthy)
            body = {
                "status": "Server available",
                "upSince": self._up_since.isoformat().replace("+00:00", "Z"),
                "uptime": _go_duration(time.monotonic() - self._started_at),
            }
            return web.Response(status=200, text=json.dumps(body), content_type="application/json")
        if custom is not None and custom.unhealthy:
            return web.Response(status=503, text=custom.unhealthy)
        return web.Response(
            status=503, text=json.dumps({"status": "Server not available"}), content_type="application/json"
        )


def create(settings: Settings, config: HealthCheckConfig) -> HealthCheckExtension:
    return HealthCheckExtension(settings, config)


factory = Factory(
    "health_check", Kind.EXTENSION, HealthCheckConfig, create,
    description="HTTP health endpoint: 200 when the service is ready, 503 otherwise.",
)
