"""Shared by the alert_routing tests: failures and traces as root_cause leaves them, HTTP servers on
127.0.0.1 that record what each receiver is sent, a server that never answers, catalog files."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import ComponentID, Kind, Settings, Telemetry
from collector.config import decode
from collector.model import Trace, make_trace
from pipelines.alert_routing import AlertRoutingProcessor, Config, factory
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
    mutates_data = False

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
    (then ``default_status``); ``retry_after`` is sent with 429/503 answers when set."""

    script: list[int] = field(default_factory=list)
    default_status: int = 200
    retry_after: str | None = None
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
