"""``service.telemetry.ui``: the status page and its JSON API on their own listener (default
``localhost:55679``, the zPages port), served by aiohttp like ``/metrics``. Read-only: GET only.

Routes (docs/status-page.md):

* ``/`` every panel; ``/view/{panel}`` one panel (pipelines, buffers, sampling, rootcauses, alerts, slos);
  ``/lookup?trace_id=HEX`` the trace lookup. ``?limit=N`` rows per list (default 50).
* ``/api/v1/status`` everything; ``/api/v1/pipelines``, ``/api/v1/sampling``, ``/api/v1/rootcauses``,
  ``/api/v1/alerts``, ``/api/v1/slos``; ``/api/v1/traces/{trace_id}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from collector.auth import ServerAuthenticator
from collector.config.net import format_address, listen_address
from collector.config.telemetry import DEFAULT_UI_ENDPOINT
from collector.config.tls import TLSServerConfig
from collector.listener import Listener
from collector.ui import page
from collector.ui.model import LimitError, StatusModel, parse_limit, parse_trace_id
from collector.ui.samples import SAMPLE_INTERVAL

log = logging.getLogger("tracetriage.service")
HTML = "text/html; charset=utf-8"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")), status=status,
                        content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _log_failure(task: asyncio.Task[None]) -> None:
    """The page's sampler failing must not stop the collector: it is logged, and page views sample alone."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("status page: the metrics sampler failed; rates are taken at page views only", exc_info=error)


class StatusServer:
    """See the module docstring. ``model`` builds the panels; ``refresh``: seconds between page reloads."""

    def __init__(self, model: StatusModel, endpoint: str = DEFAULT_UI_ENDPOINT, refresh: float = 5.0,
                 authenticator: ServerAuthenticator | None = None, tls: TLSServerConfig | None = None) -> None:
        self.model = model
        self._authenticator = authenticator
        self._auth_failures = model.telemetry.counter(
            "tracetriage_ui_auth_failures", "Requests to the status page refused by its authenticator.", ("reason",))
        host, port = listen_address(endpoint, DEFAULT_UI_ENDPOINT)
        self._listener = Listener("service.telemetry.ui", host, port, tls, "status page", log, model.telemetry)
        self._refresh = refresh
        self._sampler: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        listener = self._listener
        return f"{'https' if listener.https else 'http'}://{format_address(listener.host, listener.port)}/"

    # -- pages ---------------------------------------------------------------------------------------------

    def _panel_html(self, name: str, limit: int) -> str:
        m = self.model
        if name in ("pipelines", "buffers"):
            data = m.pipelines(limit)
            return page.pipelines_panel(data) if name == "pipelines" else page.buffers_panel(data)
        render: dict[str, tuple[Callable[[int], dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
            "sampling": (m.sampling, page.sampling_panel), "rootcauses": (m.rootcauses, page.rootcauses_panel),
            "alerts": (m.alerts, page.alerts_panel), "slos": (m.slos, page.slos_panel),
        }
        build, draw = render[name]
        return draw(build(limit))

    def render(self, view: str = "", limit: int = 50, query: str = "") -> str:
        """The page: every panel (``view`` empty), one panel, or the lookup (``view`` "lookup")."""
        m = self.model
        available = self.model.about()["trace_lookup"]
        if view == "lookup":
            result, error = None, ""
            if query and available:
                try:
                    result = m.lookup(parse_trace_id(query))
                except ValueError as e:
                    error = str(e)
            return page.document(m.about(), [("lookup", page.lookup_panel(query, result, error, available))], 0,
                                 view)
        if view:
            panels = [(view, self._panel_html(view, limit))]
        else:
            data = m.pipelines(limit)
            panels = [("pipelines", page.pipelines_panel(data)), ("buffers", page.buffers_panel(data))]
            panels += [(name, self._panel_html(name, limit)) for name in ("sampling", "rootcauses", "alerts", "slos")]
            panels.append(("lookup", page.lookup_panel("", None, "", available)))
        return page.document(m.about(), panels, self._refresh, view)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        try:
            limit = parse_limit(request.query.get("limit"))
        except LimitError as e:
            return web.Response(text=str(e), status=400)
        return web.Response(text=self.render("", limit), content_type="text/html", charset="utf-8")

    async def _view(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["panel"]
        if name not in page.TITLES or name == "lookup":
            raise web.HTTPNotFound(text=f"no panel {name!r}; the panels are: "
                                        f"{', '.join(k for k in page.TITLES if k != 'lookup')}")
        try:
            limit = parse_limit(request.query.get("limit"))
        except LimitError as e:
            return web.Response(text=str(e), status=400)
        return web.Response(text=self.render(name, limit), content_type="text/html", charset="utf-8")

    async def _lookup_page(self, request: web.Request) -> web.StreamResponse:
        query = request.query.get("trace_id", "")
        return web.Response(text=self.render("lookup", query=query), content_type="text/html", charset="utf-8")

    # -- API -----------------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["panel"]
        m = self.model
        panels: dict[str, Callable[[int], dict[str, Any]]] = {
            "status": m.everything, "pipelines": m.pipelines, "sampling": m.sampling, "rootcauses": m.rootcauses,
            "alerts": m.alerts, "slos": m.slos,
        }
        build = panels.get(name)
        if build is None:
            return _error(404, f"no endpoint /api/v1/{name}; the endpoints are: "
                               + ", ".join(f"/api/v1/{k}" for k in panels) + ", /api/v1/traces/{trace_id}")
        try:
            limit = parse_limit(request.query.get("limit"))
        except LimitError as e:
            return _error(400, str(e))
        return _json(build(limit))

    async def _api_trace(self, request: web.Request) -> web.StreamResponse:
        text = request.match_info["trace_id"]
        try:
            trace_id = parse_trace_id(text)
        except ValueError as e:
            return _error(400, f"trace id {text!r}: {e}")
        try:
            found = self.model.lookup(trace_id)
        except LookupError as e:
            return _error(503, str(e))
        if found is None:
            return _error(404, f"trace {trace_id.hex()} is not known here")
        return _json({"trace_id": trace_id.hex(), **found})

    # -- lifecycle -----------------------------------------------------------------------------------------

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = self._authenticator
        if auth is not None:
            denied = await auth.authenticate({k.lower(): v for k, v in request.headers.items()})
            if denied is not None:
                self._auth_failures.labels(denied.reason).inc()
                response = _error(401, denied.message)
                response.headers["WWW-Authenticate"] = auth.challenge
                return response
        return await handler(request)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/", self._index)
        app.router.add_get("/view/{panel}", self._view)
        app.router.add_get("/lookup", self._lookup_page)
        app.router.add_get("/api/v1/traces/{trace_id}", self._api_trace)
        app.router.add_get("/api/v1/{panel}", self._api)
        self.port = await self._listener.start(app)
        self._sampler = asyncio.create_task(self._sample(), name="status-page-sampler")
        self._sampler.add_done_callback(_log_failure)
        log.info("Serving the status page on %s", self.url)

    async def _sample(self) -> None:
        """A sample of the metrics every SAMPLE_INTERVAL, so the first view after a pause has rates."""
        while True:
            self.model.samples.sample()
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def shutdown(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await self._listener.stop()
