"""The demo's alert sink: a local HTTP server that prints each page as the team would receive it.

An SLO burn page (its labels name the ``slo``) shows the objective, both burn rates, the error budget left,
the top causes with their shares and example trace ids, and the error path or, for a latency objective, the
critical path with each span's own time; a root-cause page shows its path and failure count."""

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
            labels = details.get("labels", {})
            team = labels.get("team", "?")
            self.pages_by_team[team] += 1
            head = f"PAGE → team {team} (PagerDuty key {key[:8]}…): {payload.get('summary', '')}"
            if labels.get("slo"):
                self._print(head + "\n" + slo_lines(labels, details))
            elif labels.get("alertname") == TRACE_TEST_ALERT:
                self._print(head + "\n" + trace_test_lines(details))
            else:
                self._print(f"{head}\n"
                            f"        path: {details.get('path', '')}\n"
                            f"        failures: {details.get('count', '?')}   "
                            f"example trace: {details.get('trace_id', '')}")
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
                head = f"CHAT → team {team} (no PagerDuty key: webhook): {ann.get('summary', '')}"
                if labels.get("slo"):
                    self._print(head + "\n" + slo_lines(labels, ann))
                elif labels.get("alertname") == TRACE_TEST_ALERT:
                    self._print(head + "\n" + trace_test_lines(ann))
                else:
                    self._print(f"{head}\n        path: {ann.get('path', '')}")
            else:
                self.resolves += 1
                self._print(f"RESOLVED  team {team}: {ann.get('summary', '')}")
        return web.json_response({"status": "ok"})

    def summary(self) -> str:
        return json.dumps(dict(self.pages_by_team))


def slo_lines(labels: dict[str, Any], ann: dict[str, Any]) -> str:
    """The body of an SLO burn page: the annotations of pipelines/slo/burn.py, one fact a line."""
    try:
        budget = f"{float(ann.get('error_budget_remaining', '')):.1%}"
    except ValueError:
        budget = "?"
    lines = [
        f"objective: {ann.get('objective', labels.get('slo', ''))}",
        f"burn rate: {ann.get('burn_rate_long', '?')}x over {labels.get('long_window', '?')}, "
        f"{ann.get('burn_rate_short', '?')}x over {labels.get('short_window', '?')} "
        f"(pages above {ann.get('burn_rate_threshold', '?')}x)   error budget left: {budget}",
        f"top causes: {ann.get('causes', '')}",
        f"routed to: {ann.get('routed_to', '')}",
    ]
    if ann.get("critical_path"):
        lines.append(f"critical path: {ann['critical_path']}")
    elif ann.get("path"):
        lines.append(f"path: {ann['path']}")
    if ann.get("latency_ms"):
        lines.append(f"latency (ms): {ann['latency_ms']}")
    if ann.get("trace_id"):
        lines.append(f"example trace: {ann['trace_id']}")
    return "\n".join(f"        {line}" for line in lines)


TRACE_TEST_ALERT = "TraceTestFailed"


def trace_test_lines(ann: dict[str, Any]) -> str:
    """The body of a failing trace test's page: the annotations of pipelines/trace_tests/model.py."""
    lines = [
        f"test file: {ann.get('test_file', '')}",
        f"failed: {ann.get('failed_assertions', '')}",
        f"actual: {ann.get('actual', '')}",
        f"example traces: {ann.get('example_trace_ids', '')}",
    ]
    return "\n".join(f"        {line}" for line in lines)
