"""Shared by the alert_routing tests: failures and traces as root_cause leaves them, HTTP servers on
127.0.0.1 that record what each receiver is sent, a server that never answers, catalog files, and a
grouping engine on a fake clock that delivers through a real webhook receiver."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import ComponentID, Kind, Settings, Telemetry
from collector.config import decode
from collector.consumer import Capabilities
from collector.model import Trace, make_trace
from pipelines.alert_routing import AlertRoutingProcessor, Config, factory
from pipelines.alert_routing.grouping import GroupingEngine
from pipelines.alert_routing.inhibit import Inhibitor
from pipelines.alert_routing.metrics import AlertMetrics
from pipelines.alert_routing.notifiers import Notifier, make_notifier
from pipelines.alert_routing.route import build_routes
from pipelines.alert_routing.silences import Silences
from pipelines.root_cause.model import FAILURES, Failure, RootCause

_ids = itertools.count(1)


def make_settings(telemetry: Telemetry | None = None, name: str = "alert_routing") -> Settings:
    cid = ComponentID.parse(name)
    return Settings(id=cid, kind=Kind.PROCESSOR, telemetry=telemetry or Telemetry(),
                    logger=logging.getLogger(f"test.{cid}"), pipeline="traces")


def make_failure(
    service: str = "payment",
    span_name: str = "charge",
    *,
    signal: str = "checkout",
    signal_service: str = "frontend",
    signal_span_name: str = "place_order",
    path: Sequence[str] | None = None,
    trace_id: bytes | None = None,
    error_type: str = "",
    error_message: str = "",
    resource_attributes: Mapping[str, str] | None = None,
    blamed_callee: bool = False,
    span_service: str = "",
) -> Failure:
    n = next(_ids)
    tid = trace_id or n.to_bytes(16, "big")
    if path is None:
        path = (f"{signal_service}:{signal_span_name}", "checkout:pay", f"{service}:{span_name}")
    rc = RootCause(
        service=service, span_name=span_name, span_id=(n * 7).to_bytes(8, "big"), depth=len(path) - 1,
        path=tuple(path), end_time_unix_nano=n, span_service=span_service or service,
        blamed_callee=blamed_callee, error_type=error_type, error_message=error_message,
        resource_attributes=dict(resource_attributes or {}),
    )
    return Failure(signal=signal, signal_service=signal_service, signal_span_name=signal_span_name,
                   signal_span_id=n.to_bytes(8, "big"), trace_id=tid, primary=rc, root_causes=(rc,))


def failed_trace(*failures: Failure) -> Trace:
    """A real Trace (one signal span in error) carrying ``failures`` as root_cause leaves them."""
    first = failures[0]
    resource = Resource(attributes=[KeyValue(key="service.name",
                                             value=AnyValue(string_value=first.signal_service))])
    span = Span(trace_id=first.trace_id, span_id=first.signal_span_id, name=first.signal_span_name,
                kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1, end_time_unix_nano=2,
                status=Status(code=Status.STATUS_CODE_ERROR))
    trace = make_trace([(resource, [span])])
    trace.notes[FAILURES] = list(failures)
    return trace


def plain_trace() -> Trace:
    n = next(_ids)
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="frontend"))])
    span = Span(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name="ok",
                start_time_unix_nano=1, end_time_unix_nano=2)
    return make_trace([(resource, [span])])


def build(raw: dict[str, Any], telemetry: Telemetry | None = None) -> AlertRoutingProcessor:
    config = decode(Config, raw, "processors.alert_routing")
    proc = factory.create(make_settings(telemetry), config, _NullConsumer())
    assert isinstance(proc, AlertRoutingProcessor)
    return proc


class _NullConsumer:
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def consume_traces(self, batch: object) -> None:
        return None


def sample(telemetry: Telemetry, name: str, **labels: str) -> float:
    value = telemetry.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class CaptureServer:
    """An aiohttp server on 127.0.0.1 that records every JSON POST. ``script``: statuses to answer in order
    (then ``default_status``); ``retry_after`` is sent with 429/503 answers when set; a POST to a path in
    ``redirects`` is answered ``redirect_status`` with that Location."""

    script: list[int] = field(default_factory=list)
    default_status: int = 200
    retry_after: str | None = None
    redirects: dict[str, str] = field(default_factory=dict)
    redirect_status: int = 307
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> CaptureServer:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.received.append(Received(request.path, body, dict(request.headers), time.monotonic()))
        status = self.script.pop(0) if self.script else self.default_status
        self.answers.append(status)
        self._changed.set()
        if request.path in self.redirects:
            self.answers[-1] = self.redirect_status
            return web.Response(status=self.redirect_status, headers={"Location": self.redirects[request.path]})
        headers = {"Retry-After": self.retry_after} if self.retry_after and status in (429, 503) else {}
        return web.json_response({"status": "ok" if status < 300 else "error"}, status=status, headers=headers)

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.received if path is None or r.path == path]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout}s; received: {self.received}")
            self._changed.clear()
            try:
                async with asyncio.timeout(min(remaining, 0.05)):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def wait_count(self, n: int, path: str | None = None, timeout: float = 5.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda: len(self.bodies(path)) >= n, timeout)
        return self.bodies(path)


class HangingServer:
    """Accepts TCP connections, reads the request, never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.url = ""

    async def start(self) -> HangingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(65536):
            pass
        writer.close()

    async def stop(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def write_catalog(path: Path, components: dict[str, str], groups: dict[str, str | None],
                  component_keys: dict[str, str] | None = None) -> Path:
    """A Backstage catalog: ``components`` service -> owning team, ``groups`` team -> PagerDuty key (or None)."""
    docs: list[dict[str, Any]] = []
    for name, owner in components.items():
        meta: dict[str, Any] = {"name": name}
        if component_keys and name in component_keys:
            meta["annotations"] = {"pagerduty.com/integration-key": component_keys[name]}
        docs.append({"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": meta,
                     "spec": {"type": "service", "lifecycle": "production", "owner": f"group:{owner}"}})
    for team, key in groups.items():
        gmeta: dict[str, Any] = {"name": team}
        if key:
            gmeta["annotations"] = {"pagerduty.com/integration-key": key}
        docs.append({"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": gmeta,
                     "spec": {"type": "team", "children": []}})
    path.write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")
    return path


WALL_OFFSET = 1.75e9  # FakeClock's wall time is its monotonic time plus this (2025-06-15T14:13:20Z at 0)


class FakeClock:
    """A monotonic clock the test moves; ``wall()`` is the matching wall clock (unix seconds)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + WALL_OFFSET


@dataclass
class EngineOnWebhook:
    """A :class:`GroupingEngine` on a :class:`FakeClock` whose notifications go through a real webhook
    receiver to a :class:`CaptureServer`. ``advance`` moves the clock and runs the flushes that fall due."""

    engine: GroupingEngine
    clock: FakeClock
    notifier: Notifier
    telemetry: Telemetry
    server: CaptureServer
    silences: Silences | None

    @classmethod
    async def start(cls, server: CaptureServer, session: aiohttp.ClientSession, raw: dict[str, Any],
                    silences_file: str | None = None, clock: FakeClock | None = None) -> EngineOnWebhook:
        """``raw``: alert_routing settings over a root route to the webhook; ``silences_file``: loaded with
        the fake wall clock."""
        cfg = decode(Config, {"route": {"receiver": "hook"},
                              "receivers": [{"name": "hook", "webhook": {"url": f"{server.url}/hook"}}], **raw})
        clock = clock or FakeClock()
        telemetry = Telemetry()
        metrics = AlertMetrics(telemetry)
        logger = logging.getLogger("test.engine")
        notifier = make_notifier(cfg.receivers[0], metrics, logger)
        await notifier.start(session)
        silences = None
        if silences_file is not None:
            silences = Silences(silences_file, 0.0, metrics=metrics, label="alert_routing", logger=logger,
                                wall_clock=clock.wall)
            silences.load()
        inhibitor = Inhibitor.from_config(cfg.inhibit_rules, float(cfg.resolve_timeout)) if cfg.inhibit_rules else None
        engine = GroupingEngine(
            build_routes(cfg), lambda _group, n: notifier.enqueue(n), resolve_timeout=float(cfg.resolve_timeout),
            max_groups=cfg.max_groups, max_alerts_per_group=cfg.max_alerts_per_group, trace_url="",
            external_url="", metrics=metrics, label="alert_routing", logger=logger, clock=clock,
            wall_clock=clock.wall, inhibitor=inhibitor, silences=silences,
        )
        return cls(engine, clock, notifier, telemetry, server, silences)

    def fail(self, service: str = "payment", team: str = "payments", span: str = "charge",
             signal: str = "checkout", severity: str = "page") -> None:
        self.engine.add((team, service, span, signal, severity), make_failure(service, span, signal=signal))
        self.engine.count_failures()

    def advance(self, seconds: float, step: float = 1.0) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(self.clock.now + step, end)
            self.engine.flush_due(self.clock.now)

    async def delivered(self) -> list[dict[str, Any]]:
        """Every webhook body received once the outbox is empty."""
        async with asyncio.timeout(5):
            await self.notifier.wait_idle()
        return self.server.bodies("/hook")

    async def stop(self) -> None:
        await self.engine.close()
        self.notifier.close()
        await self.notifier.stop()


def paged(bodies: list[dict[str, Any]], status: str = "firing") -> list[dict[str, str]]:
    """The labels of every alert with ``status`` across webhook bodies, in the order received."""
    return [a["labels"] for b in bodies for a in b["alerts"] if a["status"] == status]


_mtimes = itertools.count(1)


def write_silences(path: Path, entries: list[dict[str, Any]] | str) -> Path:
    """A silences file (YAML list, or the text given); its mtime moves forward on every write, so a reload
    sees the change even within the file system's timestamp granularity."""
    path.write_text(entries if isinstance(entries, str) else yaml.safe_dump(entries, sort_keys=False))
    t = 1_700_000_000_000_000_000 + next(_mtimes) * 1_000_000_000
    os.utime(path, ns=(t, t))
    return path
