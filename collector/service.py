"""The service: builds the pipeline graph before anything starts, starts downstream first, stops upstream first.

Graph, per OTel Collector rules: one receiver instance per receiver id, fanning out to every pipeline
that lists it; one exporter instance per exporter id, shared by every pipeline that lists it; processors
are built per pipeline. Each processor is wrapped so its incoming and outgoing spans are counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from collector import __version__
from collector.auth import AuthConfig, server_authenticator
from collector.component import (
    Component,
    ComponentID,
    FinishingReceiver,
    Host,
    Kind,
    Processor,
    Settings,
    TraceStage,
    buffer_owner,
)
from collector.config.service import CollectorConfig, ComponentConfig
from collector.consumer import Capabilities, FanOutConsumer, TracesConsumer
from collector.errors import ComponentStartError
from collector.model import SpanBatch
from collector.telemetry import Telemetry
from collector.telemetry.server import MetricsServer
from collector.trace_buffer import TraceBuffer
from collector.ui.model import PipelineView, StageView, StatusModel
from collector.ui.server import StatusServer
from collector.wire import SplitOptions, load_compiled

log = logging.getLogger("tracetriage.service")

START_TIMEOUT = 15.0


class CountingConsumer:
    """Counts spans (per batch) on the way into the wrapped consumer (whose capabilities it has)."""

    __slots__ = ("_child", "_inner")

    def __init__(self, inner: TracesConsumer, child: Any) -> None:
        self._inner = inner
        self._child = child

    def capabilities(self) -> Capabilities:
        return self._inner.capabilities()

    def retarget(self, inner: TracesConsumer) -> None:
        """Point at another consumer (used while the graph is built, before anything runs)."""
        self._inner = inner

    async def consume_traces(self, batch: SpanBatch) -> None:
        self._child.inc(batch.span_count)
        await self._inner.consume_traces(batch)


@runtime_checkable
class _Stage(Component, Protocol):
    """What every processor has, span-level or trace-level (the rest its capabilities say)."""

    def capabilities(self) -> Capabilities: ...


@dataclass
class _Built:
    label: str  # "receiver otlp", "processor batch in pipeline traces"
    component: Component


@dataclass
class BuiltGraph:
    extensions: list[_Built] = field(default_factory=list)
    exporters: list[_Built] = field(default_factory=list)
    # processors per pipeline, in pipeline order (upstream first)
    processors: list[list[_Built]] = field(default_factory=list)
    receivers: list[_Built] = field(default_factory=list)


def _resource(configured: dict[str, str | None]) -> dict[str, str]:
    """The service's resource: otelcol's defaults (name, version, a fresh instance id), then the configured
    attributes (a None value removes one)."""
    out = {"service.name": "tracetriage", "service.version": __version__, "service.instance.id": str(uuid.uuid4())}
    for key, value in configured.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


class Service:
    """Runs one validated :class:`CollectorConfig`."""

    def __init__(self, config: CollectorConfig, telemetry: Telemetry | None = None) -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry()
        self.host = Host()
        self.graph = BuiltGraph()
        self.components: dict[tuple[Kind, ComponentID], Component] = {}
        self._started: list[_Built] = []
        self._shutdown_done = False
        # How this service's receivers split requests by trace (set from the pipelines by build()).
        self.split_options = SplitOptions()
        tel = config.service.telemetry
        self.telemetry.set_resource(_resource(tel.resource_attributes))
        self.host.debug = tel.debug
        self._metrics_servers = [MetricsServer(self.telemetry, addr, self.host.routes, tel.metrics.tls)
                                 for addr in tel.metrics.endpoints]
        self.status_server: StatusServer | None = None  # service.telemetry.ui, made once the graph is built

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_servers[0].port if self._metrics_servers else None

    def _settings(self, kind: Kind, cc: ComponentConfig, pipeline: str = "",
                  split_options: SplitOptions | None = None) -> Settings:
        logger = logging.getLogger(f"tracetriage.{kind.value}.{cc.id}")
        return Settings(id=cc.id, kind=kind, telemetry=self.telemetry, logger=logger, pipeline=pipeline,
                        split_options=split_options if split_options is not None else SplitOptions())

    def build(self) -> None:
        """Create every component and wire the graph. Raises ComponentStartError if a factory fails."""
        cfg = self.config
        for cid, cc in cfg.extensions.items():
            comp = self._create(Kind.EXTENSION, cc, None)
            self.graph.extensions.append(_Built(f"extension {cid}", comp))
            self.host.extensions[cid] = comp

        exporters: dict[ComponentID, Any] = {}
        for pipe in cfg.pipelines.values():
            for eid in pipe.exporters:
                if eid not in exporters:
                    exporters[eid] = self._create(Kind.EXPORTER, cfg.exporters[eid], None)
                    self.graph.exporters.append(_Built(f"exporter {eid}", exporters[eid]))

        entries: dict[ComponentID, TracesConsumer] = {}
        has_trace_stages = reads_error_attribute = False
        for pid, pipe in cfg.pipelines.items():
            nxt: TracesConsumer = FanOutConsumer([exporters[e] for e in pipe.exporters])
            built: list[_Built] = []
            run: list[tuple[ComponentID, TraceStage]] = []  # consecutive trace-level stages, upstream first
            buffered_below = False  # a trace buffer follows (some of what a stage sees is dropped there)
            for proc_id in reversed(pipe.processors):
                labels = self._labels(proc_id, pid)
                out = CountingConsumer(nxt, self.telemetry.processor_outgoing_items.labels(**labels))
                label = f"processor {proc_id} in pipeline {pid}"
                proc = self._create(Kind.PROCESSOR, cfg.processors[proc_id], out, pipeline=str(pid))
                self.host.processors.setdefault(proc_id, proc)
                self.host.pipeline_processors.setdefault(str(pid), {})[proc_id] = proc
                built.insert(0, _Built(label, proc))
                caps = self._capabilities(label, proc)
                if caps.trace_level:
                    if not isinstance(proc, TraceStage):
                        raise ComponentStartError(label, "declares trace_level but has no process_traces or "
                                                         "buffer_settings")
                    run.insert(0, (proc_id, proc))
                    has_trace_stages = True
                    reads_error_attribute |= caps.reads_error_attribute
                    continue
                if not isinstance(proc, Processor):
                    raise ComponentStartError(label, "has no consume_traces (a trace stage declares trace_level)")
                if run:  # this span-level stage feeds the trace buffer of the run just below it
                    out.retarget(self._trace_buffer(pid, run, nxt, built))
                    run = []
                    buffered_below = True
                if buffered_below:
                    self.host.decided_after.add((str(pid), proc_id))
                nxt = CountingConsumer(proc, self.telemetry.processor_incoming_items.labels(**labels))
            if run:
                nxt = self._trace_buffer(pid, run, nxt, built)
            self.graph.processors.append(built)
            entries[pid] = nxt
        # Only trace stages read the wire walk's error hints; without them, receivers skip that work, and
        # the search for ``error`` attributes runs only for stages that read them.
        self.split_options = SplitOptions(error_hints=has_trace_stages, error_attribute=reads_error_attribute)
        # The compiled wire walk (numba, the ``jit`` extra): compiled or loaded from its cache now, not on
        # the first large request.
        if load_compiled():
            log.info("wire walk: compiled (numba)")

        for rid, rc in cfg.receivers.items():
            targets = [entries[pid] for pid, pipe in cfg.pipelines.items() if rid in pipe.receivers]
            if not targets:
                continue  # defined but unused: not built, as in otelcol
            comp = self._create(Kind.RECEIVER, rc, FanOutConsumer(targets), split_options=self.split_options)
            self.graph.receivers.append(_Built(f"receiver {rid}", comp))

    @staticmethod
    def _capabilities(label: str, proc: object) -> Capabilities:
        if not isinstance(proc, _Stage):
            raise ComponentStartError(label, "is not a processor: it needs capabilities(), start() and shutdown(), "
                                             "and consume_traces() or (a trace stage) process_traces()")
        return proc.capabilities()

    @staticmethod
    def _labels(proc_id: ComponentID, pid: ComponentID) -> dict[str, str]:
        return {"processor": str(proc_id), "pipeline": str(pid), "otel_signal": "traces"}

    def _trace_buffer(self, pid: ComponentID, run: list[tuple[ComponentID, TraceStage]], nxt: TracesConsumer,
                      built: list[_Built]) -> TracesConsumer:
        """One buffer in front of a run of trace-level stages: it holds each trace once and hands whole
        traces to the stages in config order. Settings come from the stage that defines them
        (tail_sampling), else the first stage."""
        owner_id, owner = buffer_owner(run)
        t = self.telemetry
        counters = [(t.processor_incoming_items.labels(**self._labels(i, pid)),
                     t.processor_outgoing_items.labels(**self._labels(i, pid))) for i, _ in run]
        settings = Settings(id=owner_id, kind=Kind.PROCESSOR, telemetry=t,
                            logger=logging.getLogger(f"tracetriage.trace_buffer.{pid}"), pipeline=str(pid))
        buffer = TraceBuffer(settings, owner.buffer_settings, [(str(i), p) for i, p in run], nxt, counters)
        first = next(idx for idx, b in enumerate(built) if b.component is run[0][1])
        built.insert(first, _Built(f"trace buffer of {', '.join(str(i) for i, _ in run)} in pipeline {pid}",
                                   buffer))
        return buffer

    def _create(self, kind: Kind, cc: ComponentConfig, nxt: TracesConsumer | None, pipeline: str = "",
                split_options: SplitOptions | None = None) -> Any:
        try:
            comp = cc.factory.create(self._settings(kind, cc, pipeline, split_options), cc.config, nxt)
        except ComponentStartError:
            raise
        except (OSError, ValueError, TypeError) as e:
            raise ComponentStartError(f"{kind.value} {cc.id}", e) from e
        self.components[(kind, cc.id)] = comp
        return comp

    def _start_order(self) -> Iterable[_Built]:
        yield from self.graph.extensions
        yield from self.graph.exporters
        for built in self.graph.processors:
            yield from reversed(built)
        yield from self.graph.receivers

    def pipeline_views(self) -> list[PipelineView]:
        """The built graph as the status page draws it: per pipeline its receivers, its processors and trace
        buffers in order, and its exporters."""
        views = []
        for (pid, pipe), built in zip(self.config.pipelines.items(), self.graph.processors, strict=True):
            stages = []
            for b in built:
                comp = b.component
                if isinstance(comp, TraceBuffer):
                    stages.append(StageView("buffer", comp.owner, comp, comp.stage_names))
                else:
                    stages.append(StageView("processor", b.label.removeprefix("processor ").split(" in pipeline ")[0],
                                            comp))
            views.append(PipelineView(str(pid), tuple(str(r) for r in pipe.receivers), tuple(stages),
                                      tuple(str(e) for e in pipe.exporters)))
        return views

    async def start(self) -> None:
        """Start everything, downstream first. On any failure, stop what started and raise."""
        ui = self.config.service.telemetry.ui
        try:
            for server in self._metrics_servers:
                await server.start()
            for b in self._start_order():
                await self._start_one(b)
            if ui is not None and self.status_server is None:  # after the extensions: it may use an authenticator
                authenticator = None
                if ui.auth is not None:
                    authenticator = server_authenticator(self.host, AuthConfig(ui.auth.authenticator),
                                                         "service.telemetry.ui")
                model = StatusModel(self.telemetry, self.host, self.pipeline_views())
                self.status_server = StatusServer(model, ui.endpoint, float(ui.refresh), authenticator, ui.tls)
                await self.status_server.start()
        except BaseException:
            await self.shutdown(limit=5.0)
            raise
        self.host.ready = True
        log.info("Everything is ready. Begin running and processing data.")

    async def _start_one(self, b: _Built) -> None:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(b.component.start(self.host), START_TIMEOUT)
        except ComponentStartError:
            self._started.append(b)
            raise
        except TimeoutError as e:
            self._started.append(b)
            raise ComponentStartError(b.label, f"did not start within {START_TIMEOUT:.0f}s") from e
        except (OSError, ValueError, RuntimeError) as e:
            self._started.append(b)
            raise ComponentStartError(b.label, e) from e
        self._started.append(b)
        log.debug("started %s in %.3fs", b.label, time.monotonic() - t0)

    async def shutdown(self, limit: float | None = None) -> None:
        """Stop receivers, then processors upstream first, then exporters and extensions.

        Every stage flushes into a live successor. The whole is bounded by ``limit`` seconds (default
        ``service.shutdown_timeout``); a stage still busy at the deadline is cancelled and logged.
        """
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self.host.ready = False
        budget = self.config.service.shutdown_timeout if limit is None else limit
        deadline = time.monotonic() + budget
        started = {id(b) for b in self._started}
        # Receivers that can finish after the pipeline drained (the Kafka receiver commits the offsets of
        # what the drain exported) only stop taking data first.
        finishing = [(b, b.component) for b in self.graph.receivers
                     if id(b) in started and isinstance(b.component, FinishingReceiver)]
        for _, receiver in finishing:
            receiver.defer_finish()
        order: list[_Built] = list(self.graph.receivers)
        for built in self.graph.processors:
            order.extend(built)
        order += self.graph.exporters + self.graph.extensions
        for b in order:
            if id(b) not in started:
                continue
            remaining = max(0.05, deadline - time.monotonic())
            try:
                await asyncio.wait_for(b.component.shutdown(), remaining)
            except TimeoutError:
                if getattr(b.component, "reports_held_data", False):
                    # It logged itself what it still held and whether that is on disk or lost.
                    log.warning("%s did not finish shutting down within the shutdown timeout (%.1fs)",
                                b.label, budget)
                else:
                    log.error("%s did not finish shutting down within the shutdown timeout (%.1fs); "
                              "data it still held is lost", b.label, budget)
            except Exception:
                log.exception("%s failed to shut down cleanly", b.label)
        for b, receiver in finishing:
            remaining = max(0.05, deadline - time.monotonic())
            try:
                await asyncio.wait_for(receiver.finish(), remaining)
            except TimeoutError:
                log.error("%s did not finish within the shutdown timeout (%.1fs)", b.label, budget)
            except Exception:
                log.exception("%s failed to finish cleanly", b.label)
        for server in self._metrics_servers:
            await server.shutdown()
        if self.status_server is not None:
            await self.status_server.shutdown()
        log.info("Shutdown complete.")
