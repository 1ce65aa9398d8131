"""The demo's alert sink: a local HTTP server that prints each page as the team would receive it."""

from __future__ import annotations

import collections
import json
from typing import Any, TextIO

from aiohttp import web


class AlertSink:
    """Accepts PagerDuty Events v2 and Alertmanager-webhook posts on 127.0.0.1 and prints them."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.pages_by_team: collections.Counter[str] = collections.Counter()
        self.resolves = 0
        self.events: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/pagerduty", self._pagerduty)
        app.router.add_post("/webhook", self._webhook)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _print(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    async def _pagerduty(self, request: web.Request) -> web.Response:
        event = await request.json()
        self.events.append(event)
        key = str(event.get("routing_key", ""))
        if event.get("event_action") == "resolve":
            self.resolves += 1
            self._print(f"RESOLVED  PagerDuty key {key[:8]}…  incident {event.get('dedup_key', '')[:12]}")
        else:
            payload = event.get("payload", {})
            details = payload.get("custom_details", {})
            team = details.get("labels", {}).get("team", "?")
            self.pages_by_team[team] += 1
            self._print(
                f"PAGE → team {team} (PagerDuty key {key[:8]}…): {payload.get('summary', '')}\n"
                f"        path: {details.get('path', '')}\n"
                f"        failures: {details.get('count', '?')}   example trace: {details.get('trace_id', '')}"
            )
        return web.json_response({"status": "success", "message": "Event processed"}, status=202)

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.events.append(body)
        status = body.get("status", "")
        for alert in body.get("alerts", []):
            labels, ann = alert.get("labels", {}), alert.get("annotations", {})
            team = labels.get("team", "?")
            if status == "firing":
                self.pages_by_team[team] += 1
                self._print(f"CHAT → team {team} (no PagerDuty key: webhook): {ann.get('summary', '')}\n"
                            f"        path: {ann.get('path', '')}")
            else:
                self.resolves += 1
                self._print(f"RESOLVED  team {team}: {ann.get('summary', '')}")
        return web.json_response({"status": "ok"})

    def summary(self) -> str:
        return json.dumps(dict(self.pages_by_team))
