"""The component model: ids, kinds, factories, settings handed to each component, and its lifecycle.

Every component comes from a :class:`Factory` (``type``, ``kind``, ``config_class``, ``create``).
``start(host)`` returns quickly and owns the background tasks it starts; a failure to start raises.
``shutdown()`` is idempotent, safe before ``start()``, and flushes what the component holds.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from collector.consumer import Capabilities, TraceBufferSettings, TracesConsumer
from collector.telemetry import Telemetry
from collector.wire import SplitOptions

if TYPE_CHECKING:
    from aiohttp import web

    from collector.model import Origin, Trace

_TYPE_RE = re.compile(r"^[a-zA-Z][0-9a-zA-Z_]{0,62}$")


class Kind(enum.StrEnum):
    RECEIVER = "receiver"
    PROCESSOR = "processor"
    EXPORTER = "exporter"
    EXTENSION = "extension"

    @property
    def section(self) -> str:
        return self.value + "s"


@dataclass(frozen=True, order=True)
class ComponentID:
    """``type`` or ``type/name``, as written in config."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> ComponentID:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("component id must be a non-empty string such as 'otlp' or 'otlp/2'")
        type_, sep, name = text.strip().partition("/")
        if not _TYPE_RE.match(type_):
            raise ValueError(f"invalid component type {type_!r} in id {text!r}")
        if sep and not name:
            raise ValueError(f"component id {text!r} has an empty name after '/'")
        return cls(type_, name)

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


@dataclass(frozen=True)
class ExtensionRef:
    """A reference from a component's config to an extension by id (``sending_queue.storage: file_storage``,
    ``ownership: ownership/prod``): the config layer checks, before anything starts, that ``id`` names an
    extension of type ``type`` (any type when ``type`` is empty) that is listed in ``service.extensions``;
    errors name ``key``, the path of the reference within the component's config."""

    key: str
    id: str
    type: str


@runtime_checkable
class ReferencesExtensions(Protocol):
    """A component config whose settings name extensions (resolved from ``Host.extensions`` at start)."""

    def extension_refs(self) -> Iterable[ExtensionRef]: ...


RouteHandler = Callable[["web.Request", str], Awaitable["web.StreamResponse"]]


@dataclass(frozen=True)
class Route:
    """A GET endpoint of the telemetry server; ``prefix`` is the path up to a trailing ``{name}``."""

    path: str
    handler: RouteHandler

    @property
    def prefix(self) -> str:
        return self.path[:self.path.rindex("{")] if self.path.endswith("}") else self.path


@runtime_checkable
class TraceLookup(Protocol):
    """What happened to one trace (held, kept or dropped, by which stage or policy), from what a component
    remembers of its recent decisions; None when it knows nothing of the trace. The status page's trace
    lookup calls the one a component sets as ``Host.trace_lookup`` (a debug feature: it shows trace ids and
    span names, so it is offered only with ``service.telemetry.debug``)."""

    def lookup(self, trace_id: bytes) -> dict[str, Any] | None: ...


@runtime_checkable
class StatusSource(Protocol):
    """A component that shows itself on the status page (collector/ui/), in the panel ``status_panel`` names
    (``sampling``, ``rootcauses``, ``alerts``, ``slos``, ``buffer``): ``status(limit)`` returns a JSON-ready
    snapshot of what it already keeps (counts, bounded tallies, its last evaluation; at most ``limit`` rows in
    any list). It is called per page view on the event loop: its cost must not grow with the traffic or the
    spans held."""

    status_panel: str

    def status(self, limit: int) -> dict[str, Any]: ...


class TraceOutcomeListener(Protocol):
    """Told by every trace buffer what it took in and what it decided (``Host.add_outcome_listener``).

    Spans are counted per origin (resource and scope) with their wire size as received (before any stage
    changed them): ``spans_received`` when the buffer files them; ``spans_decided`` when their trace is kept
    or dropped (decided, too large, a late span following a cached decision, dropped at shutdown).
    ``traces_decided`` names the trace ids of each decision round (a late span's trace again). Called on the
    event loop, on the span path: keep them cheap. A listener with ``counts_spans`` False is only told trace
    ids (the buffer then skips measuring spans and bytes for it)."""

    counts_spans: bool

    def spans_received(self, origin: Origin, spans: int, size: int) -> None: ...

    def spans_decided(self, origin: Origin, spans: int, size: int, kept: bool) -> None: ...

    def traces_decided(self, kept: Sequence[bytes], dropped: Sequence[bytes]) -> None: ...


class Host:
    """What a running component may ask of the service around it."""

    def __init__(self) -> None:
        self.ready = False
        self.fatal_error: BaseException | None = None
        # Problems a component reports and clears itself (a persistent queue that cannot be written): while
        # any is present, health_check answers 503. Keyed by what has the problem; the text is for logs.
        self.problems: dict[str, str] = {}
        self._fatal = asyncio.Event()
        self.extensions: dict[ComponentID, Component] = {}
        # Processors as the service builds them, for stages that work with another one (alert_routing pages
        # the burns of an slo stage): by id (an id listed in several pipelines: the first pipeline's), and
        # each pipeline's own by pipeline id. Filled before anything starts; look them up in start().
        self.processors: dict[ComponentID, Any] = {}
        self.pipeline_processors: dict[str, dict[ComponentID, Any]] = {}
        self._holders: list[Callable[[], int]] = []
        # Extra read-only endpoints on the telemetry server (beside /metrics), added by components in start().
        self.routes: dict[str, Route] = {}
        # service.telemetry.debug: endpoints added with debug=True are served only when it is on.
        self.debug = False
        # Kafka consumer groups this service's receivers joined: group id -> each member receiver's count of
        # the group's members at its last rebalance (None before one), added by the receivers in start().
        self.consumer_groups: dict[str, list[Callable[[], int | None]]] = {}
        # The trace lookup of the status page, set in start() by the component that provides one.
        self.trace_lookup: TraceLookup | None = None
        # Told of every trace buffer's intake and decisions (read by the buffers at each call).
        self.outcome_listeners: list[TraceOutcomeListener] = []
        # (pipeline, processor id) of each span-level processor that has a trace buffer after it in its
        # pipeline: what it sees is decided later (a stage that links to traces waits for the decision).
        self.decided_after: set[tuple[str, ComponentID]] = set()
        # Objects components share by key (one metrics listener that several processors serve on).
        self.shared: dict[str, Any] = {}

    def add_outcome_listener(self, listener: TraceOutcomeListener) -> None:
        """Be told what every trace buffer receives and decides (see :class:`TraceOutcomeListener`)."""
        if listener not in self.outcome_listeners:
            self.outcome_listeners.append(listener)

    def remove_outcome_listener(self, listener: TraceOutcomeListener) -> None:
        if listener in self.outcome_listeners:
            self.outcome_listeners.remove(listener)

    def add_route(self, path: str, handler: RouteHandler, *, debug: bool = False) -> None:
        """Serve ``GET path`` on the telemetry server (every /metrics address). ``path`` may end in one
        ``{name}`` segment, handed to ``handler`` as its second argument (e.g. ``/debug/traces/{trace_id}``).
        A ``debug`` route is not served unless ``service.telemetry.debug`` is on."""
        if debug and not self.debug:
            return
        if path in self.routes:
            raise ValueError(f"telemetry route {path} is already served")
        self.routes[path] = Route(path, handler)

    def add_holder(self, held: Callable[[], int]) -> None:
        """A component that keeps data in memory between calls (a trace buffer, an in-memory exporter queue)
        registers, in ``start()``, how many items it holds now; cheap, read on every memory check."""
        self._holders.append(held)

    def held(self) -> int:
        """Items the registered holders keep in memory now; 0 when nothing is buffered anywhere."""
        return sum(held() for held in self._holders)

    def watch(self, task: asyncio.Task[Any], log: logging.Logger, owner: str) -> None:
        """A component's background task that must not fail: if it ends with an error, that is logged (naming
        ``owner`` and the task) and reported as fatal. Cancellation and a clean end say nothing."""

        def done(t: asyncio.Task[Any]) -> None:
            if t.cancelled() or (error := t.exception()) is None:
                return
            log.error("%s: background task %s failed", owner, t.get_name(), exc_info=error)
            self.report_fatal_error(error)

        task.add_done_callback(done)

    def report_problem(self, what: str, problem: str | None) -> None:
        """A recoverable problem of ``what`` (None: it is over). Health reports unavailable meanwhile."""
        if problem is None:
            self.problems.pop(what, None)
        else:
            self.problems[what] = problem

    def report_fatal_error(self, error: BaseException) -> None:
        """A component's background task failed beyond repair: the service stops with exit code 1."""
        if self.fatal_error is None:
            self.fatal_error = error
        self._fatal.set()

    async def wait_fatal(self) -> BaseException | None:
        await self._fatal.wait()
        return self.fatal_error


@dataclass
class Settings:
    """Handed to ``Factory.create``: who the component is and the service-wide facilities.

    ``split_options``: how a receiver has the requests it takes split by trace (what the split works out
    about errors); the service sets it for its receivers from what its pipelines read."""

    id: ComponentID
    kind: Kind
    telemetry: Telemetry
    logger: logging.Logger
    pipeline: str = ""
    split_options: SplitOptions = field(default_factory=SplitOptions)

    @property
    def labels(self) -> dict[str, str]:
        return {self.kind.value: str(self.id)}


@runtime_checkable
class Component(Protocol):
    async def start(self, host: Host) -> None: ...

    async def shutdown(self) -> None: ...


class Receiver(Component, Protocol):
    """Pushes batches into ``next`` given at creation."""


@runtime_checkable
class FinishingReceiver(Receiver, Protocol):
    """A receiver with a second shutdown phase. The service calls ``defer_finish()`` before shutting down;
    ``shutdown()`` then only stops taking data, and ``finish()`` runs once every processor and exporter
    has shut down (the Kafka receiver commits the offsets of what the pipeline exported while draining)."""

    def defer_finish(self) -> None: ...

    async def finish(self) -> None: ...


@runtime_checkable
class Processor(Component, TracesConsumer, Protocol):
    """A consumer that passes (possibly changed, fewer or later) batches to ``next``.

    What it is, it declares in ``capabilities()`` (:class:`~collector.consumer.Capabilities`). A processor
    whose capabilities say ``trace_level`` is a :class:`~collector.consumer.TraceStage` instead: the
    pipeline's trace buffer feeds it whole traces, and it needs no ``consume_traces``.
    """

    def capabilities(self) -> Capabilities: ...


class Exporter(Component, TracesConsumer, Protocol):
    """The last stage: sends batches out of the process."""


@runtime_checkable
class TraceStage(Protocol):
    """A processor that works on whole traces (its capabilities say ``trace_level``).

    The pipeline puts one trace buffer in front of each run of consecutive trace stages and calls
    ``process_traces`` with the traces whose decision time has come, in config order. A stage returns
    the traces it lets through (all of them, for a stage that only looks); traces it does not return
    are dropped by the buffer (and remembered as not sampled in its decision cache).

    ``buffer_settings`` configures that buffer: those of the stage whose capabilities say
    ``defines_buffer`` (tail_sampling) win, else the first stage's (see :func:`buffer_owner`).
    """

    buffer_settings: TraceBufferSettings

    def capabilities(self) -> Capabilities: ...

    def process_traces(self, traces: list[Trace]) -> list[Trace]: ...

    async def start(self, host: Host) -> None: ...

    async def shutdown(self) -> None: ...


_K = TypeVar("_K")


def buffer_owner(run: Sequence[tuple[_K, TraceStage]]) -> tuple[_K, TraceStage]:
    """The (key, stage) of a run of trace stages whose ``buffer_settings`` the trace buffer takes: the first
    that ``defines_buffer``, else the first."""
    if not run:
        raise ValueError("a run of trace stages needs at least one stage")
    return next((entry for entry in run if entry[1].capabilities().defines_buffer), run[0])


class Factory:
    """Builds one kind of component. Subclass it or instantiate with a ``create`` callable. ``aliases`` are
    other type names config may use for it (upstream's older or newer spelling).

    ``create`` signatures by kind: receivers and processors ``(settings, config, next_consumer)``,
    exporters and extensions ``(settings, config)``.
    """

    def __init__(
        self,
        type: str,
        kind: Kind,
        config_class: type[Any],
        create: Callable[..., Any],
        *,
        stability: str = "beta",
        description: str = "",
        aliases: tuple[str, ...] = (),
    ) -> None:
        for name in (type, *aliases):
            if not _TYPE_RE.match(name):
                raise ValueError(f"invalid component type {name!r}")
        self.type = type
        self.aliases = tuple(aliases)
        self.kind = Kind(kind)
        self.config_class = config_class
        self._create = create
        self.stability = stability
        self.description = description

    def create(self, settings: Settings, config: Any, next_consumer: TracesConsumer | None = None) -> Any:
        if self.kind in (Kind.RECEIVER, Kind.PROCESSOR):
            if next_consumer is None:
                raise ValueError(f"{self.kind} {settings.id} needs a next consumer")
            return self._create(settings, config, next_consumer)
        return self._create(settings, config)

    def __repr__(self) -> str:
        return f"Factory({self.kind.value} {self.type!r})"
