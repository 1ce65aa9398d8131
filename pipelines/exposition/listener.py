"""The Prometheus listener the span-derived series are served on (``endpoint``, default ``localhost:8889``, as
the contrib ``prometheus`` exporter's), apart from the collector's own ``/metrics``.

Processors that name the same endpoint share one listener (kept in ``Host.shared``): it serves the series of
each, and closes when the last one shuts down. The exposition format is negotiated from ``Accept``:
OpenMetrics (with exemplars) when the scraper asks for it, else the Prometheus text format 0.0.4.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from collector.component import Host
from collector.config.net import format_address, listen_address
from collector.errors import ComponentStartError

DEFAULT_ENDPOINT = "localhost:8889"


class SeriesSource(Protocol):
    """A processor's series, collected at each scrape."""

    def families(self) -> Iterable[Metric]: ...


class _Sources:
    """What ``choose_encoder``'s encoders collect from: every source's families."""

    def __init__(self, sources: list[SeriesSource]) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        for source in list(self._sources):
            yield from source.families()


class MetricsListener:
    """One HTTP listener serving ``/metrics`` from the sources added to it."""

    def __init__(self, endpoint: str, logger: logging.Logger) -> None:
        self.endpoint = endpoint
        self._host, self._port = listen_address(endpoint, DEFAULT_ENDPOINT)
        self._sources: list[SeriesSource] = []
        self._logger = logger
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def add(self, source: SeriesSource) -> None:
        self._sources.append(source)

    def remove(self, source: SeriesSource) -> bool:
        """Stop serving ``source``; True when no source is left."""
        if source in self._sources:
            self._sources.remove(source)
        return not self._sources

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(_Sources(self._sources))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def start(self, owner: str) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_port=False)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ComponentStartError(owner, f"endpoint: cannot listen on {self._host}:{self._port}: "
                                             f"{e.strerror or e}") from e
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        self._logger.info("Serving span-derived metrics on %s/metrics", format_address(self._host, self.port))

    async def shutdown(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def serve(host: Host, endpoint: str, source: SeriesSource, owner: str,
                logger: logging.Logger) -> MetricsListener:
    """Serve ``source`` on the listener of ``endpoint`` (started now if no processor serves there yet)."""
    key = "exposition:" + endpoint
    listener = host.shared.get(key)
    if not isinstance(listener, MetricsListener):
        listener = MetricsListener(endpoint, logger)
        await listener.start(owner)
        host.shared[key] = listener
    listener.add(source)
    return listener


async def stop_serving(host: Host | None, listener: MetricsListener | None, source: SeriesSource) -> None:
    """Stop serving ``source``; the listener closes when it serves nothing more."""
    if listener is not None and listener.remove(source):
        await _close(host, listener)


async def _close(host: Host | None, listener: MetricsListener) -> None:
    key = "exposition:" + listener.endpoint
    if host is not None and host.shared.get(key) is listener:
        del host.shared[key]
    await listener.shutdown()
