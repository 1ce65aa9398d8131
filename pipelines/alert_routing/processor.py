"""The ``alert_routing`` trace stage: failures from ``root_cause`` become grouped, routed notifications.

``process_traces`` only looks: for each :class:`Failure` in ``trace.notes[FAILURES]`` it asks the
ownership catalog for the root-cause service's team and counts the failure into the grouping engine
(dictionary work, no I/O, no awaiting). The engine's scheduler task decides when a group notifies; the
router below picks the destination once per group (for a ``pagerduty`` receiver without a routing key:
the team's key from the catalog, else the ``fallback_receiver``, else counted undeliverable) and each
receiver's sender task delivers from its bounded outbox. ``inhibit_rules`` and the ``silences`` file
mute alerts at flush time (see inhibit.py, silences.py and grouping.py).

With ``trigger: slo`` (or ``both``) the burning objectives of an ``slo`` processor page too (with ``slo``,
only they do). The slo stage is found in ``start()`` (``Host.pipeline_processors``: the one in this
pipeline, else ``Host.processors``), and calls :meth:`AlertRoutingProcessor.on_slo_statuses` after each
evaluation. Each firing burn-rate alert becomes a held alert (``alertname="SLOBurn"``, ``slo``,
``severity``, ``long_window``, ``short_window``) for the team that owns the dominant root cause of the
long window's bad events (the objective's owner when no cause dominates), chosen when the alert starts
firing and kept while it fires; it resolves when the burn stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from collector import ComponentID, Host, Settings, TracesConsumer
from collector.auth import client_authenticator
from collector.config import Opaque
from collector.consumer import Capabilities, TraceBufferSettings
from collector.errors import ComponentStartError
from collector.model import Trace
from pipelines.alert_routing.alerts import ALERT_GROUPS, LabelValues, Notification
from pipelines.alert_routing.config import Config
from pipelines.alert_routing.grouping import AggregationGroup, GroupingEngine
from pipelines.alert_routing.inhibit import Inhibitor
from pipelines.alert_routing.metrics import AlertMetrics
from pipelines.alert_routing.notifiers import Notifier, PagerDutyNotifier, make_notifier
from pipelines.alert_routing.route import build_routes
from pipelines.alert_routing.silences import Silences
from pipelines.ownership import Ownership, OwnershipSource, normalise_team
from pipelines.root_cause.model import FAILURES, Failure
from pipelines.slo import ObjectiveStatus, SloBurn, SloProcessor
from pipelines.trace_tests.model import ALERTNAME as TEST_ALERTNAME
from pipelines.trace_tests.model import TEST_FAILURES, TestFailure

_CAPABILITIES = Capabilities(trace_level=True)  # it only looks at the failures root_cause noted
Binding = tuple[Notifier, Opaque | None]  # the receiver that got the group's first page, and its routing key
SLO_ALERTNAME = "SLOBurn"


class AlertRoutingProcessor:
    """See the module docstring."""

    status_panel = "alerts"

    __slots__ = (
        "_burning", "_closed", "_config", "_engine", "_failures_page", "_host", "_logger", "_metrics", "_notifiers",
        "_ownership", "_pipeline", "_session", "_severity", "_silences", "_slo", "_tasks", "_tests_page",
        "buffer_settings", "id",
    )

    def __init__(self, settings: Settings, config: Config, next_consumer: TracesConsumer | None = None) -> None:
        # next_consumer is unused: the trace buffer calls process_traces and passes traces on itself.
        self.id = settings.id
        self.buffer_settings = TraceBufferSettings(decision_wait=float(config.decision_wait))
        self._config = config
        self._logger = settings.logger
        self._pipeline = settings.pipeline
        self._severity = config.severity
        self._failures_page = "root_cause" in config.triggers
        self._tests_page = "trace_tests" in config.triggers
        self._slo: SloProcessor | None = None
        # Firing burn-rate alerts: (objective, alert) -> their label values (the team chosen when they began)
        self._burning: dict[tuple[str, str], LabelValues] = {}
        self._metrics = AlertMetrics(settings.telemetry)
        self._ownership = OwnershipSource(config.ownership, settings)
        self._notifiers: dict[str, Notifier] = {
            r.name: make_notifier(r, self._metrics, settings.logger) for r in config.receivers
        }
        self._silences = Silences(
            config.silences.file, float(config.silences.reload_interval), metrics=self._metrics,
            label=str(settings.id), logger=settings.logger,
        ) if config.silences.file else None
        inhibitor = (
            Inhibitor.from_config(config.inhibit_rules, float(config.resolve_timeout))
            if config.inhibit_rules else None
        )
        self._engine = GroupingEngine(
            build_routes(config),
            self._dispatch,
            resolve_timeout=float(config.resolve_timeout),
            max_groups=config.max_groups,
            max_alerts_per_group=config.max_alerts_per_group,
            trace_url=config.trace_url,
            external_url=config.external_url,
            metrics=self._metrics,
            label=str(settings.id),
            logger=settings.logger,
            inhibitor=inhibitor,
            silences=self._silences,
        )
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._host: Host | None = None
        self._closed = False

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    @property
    def engine(self) -> GroupingEngine:
        return self._engine

    @property
    def ownership(self) -> Ownership:
        """The ownership in use (a referenced extension's: from start on)."""
        return self._ownership.get()

    @property
    def silences(self) -> Silences | None:
        return self._silences

    @property
    def notifiers(self) -> dict[str, Notifier]:
        return self._notifiers

    def status(self, limit: int = 50) -> dict[str, Any]:
        """For the status page: open groups (the ``limit`` with most failures), receivers (secrets redacted),
        silences and inhibit rules in force. Undeliverable pages are in the metrics the page reads beside."""
        out = self._engine.snapshot(limit)
        out["panel"] = "alerts"
        out["trigger"] = self._config.trigger
        out["receivers"] = [n.describe() for n in self._notifiers.values()]
        silences = self._silences
        if silences is not None:
            wall = time.time()
            out["silences"] = {
                "active": silences.count("active", wall), "pending": silences.count("pending", wall),
                "in_force": [{"id": s.id, "matchers": [str(m) for m in s.matchers], "created_by": s.created_by,
                              "comment": s.comment, "ends_in": s.ends_at - wall}
                             for s in silences.silences if s.state(wall) == "active"][:50],
            }
        else:
            out["silences"] = {"active": 0, "pending": 0, "in_force": []}
        return out

    # -- span path --------------------------------------------------------------------------------------

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        if self._tests_page:
            self._page_trace_tests(traces)
        if not self._failures_page:  # trigger: slo: root causes only choose the team of an objective's page
            return traces
        add = self._engine.add
        owner_of = self._ownership.get().owner_of
        severity = self._severity
        for trace in traces:
            failures: list[Failure] | None = trace.note(FAILURES)
            if not failures:
                continue
            groups: list[str] = []
            for failure in failures:
                p = failure.primary
                # A blamed callee (an uninstrumented database) is not described by the caller's resource.
                team = owner_of(p.service, None if p.blamed_callee else p.resource_attributes).name
                groups += add((team, p.service, p.span_name, failure.signal, severity, "", "", "", ""), failure)
            trace.notes[ALERT_GROUPS] = groups
        self._engine.count_failures()
        return traces

    def _page_trace_tests(self, traces: list[Trace]) -> None:
        """Failing trace-test specs that reached the trace_tests stage's alerting thresholds: one alert per
        test and spec (``alertname="TraceTestFailed"``, ``signal`` the test, ``span_name`` the spec), for the
        spec's owner."""
        add = self._engine.add
        severity = self._severity
        added = False
        for trace in traces:
            failures: list[TestFailure] | None = trace.note(TEST_FAILURES)
            if not failures:
                continue
            for f in failures:
                add((f.team, f.service, f.spec, f.test, severity, TEST_ALERTNAME, "", "", ""), f)
                added = True
        if added:
            self._engine.count_failures()

    # -- objectives' burns (after each evaluation of the slo stage) ----------------------------------------

    def on_slo_statuses(self, statuses: Sequence[ObjectiveStatus]) -> None:
        """Firing burn-rate alerts page (held until they stop); the others, and those of objectives no longer
        evaluated, resolve."""
        add, release = self._engine.add, self._engine.release
        firing: set[tuple[str, str]] = set()
        for status in statuses:
            name = status.objective.name
            for alert in status.alerts:
                burn = alert.burn
                if not alert.firing or burn is None:
                    continue
                key = (name, str(alert.spec))
                firing.add(key)
                values = self._burning.get(key)
                if values is None:
                    values = self._burning[key] = self._slo_labels(burn)
                add(values, burn, held=True)
        for key in [k for k in self._burning if k not in firing]:
            release(self._burning.pop(key))

    def _slo_labels(self, burn: SloBurn) -> LabelValues:
        """The team that owns the dominant root cause, else the objective's owner (its explicit owner, else
        the owner of its service)."""
        o, spec = burn.objective, burn.spec
        if burn.dominant is not None:
            service = burn.dominant.cause
            team = self._ownership.get().owner_of(service).name
        else:
            service = o.service
            team = normalise_team(o.owner) if o.owner else self._ownership.get().owner_of(service).name
        return (team, service, "", "", spec.severity, SLO_ALERTNAME, o.name, spec.long_text, spec.short_text)

    def _find_slo(self, host: Host) -> SloProcessor:
        who = f"processor {self.id}"
        cid = ComponentID.parse(self._config.slo)
        proc = host.pipeline_processors.get(self._pipeline, {}).get(cid) or host.processors.get(cid)
        if proc is None:
            raise ComponentStartError(who, f"trigger: {self._config.trigger} pages the burns of processor {cid}, "
                                           f"which is in no pipeline (list it before {self.id} in this pipeline)")
        if not isinstance(proc, SloProcessor):
            raise ComponentStartError(who, f"slo: processor {cid} is not an slo processor")
        return proc

    # -- routing (scheduler task) -------------------------------------------------------------------------

    def _dispatch(self, group: AggregationGroup, notification: Notification) -> None:
        binding: Binding | None = group.binding  # type: ignore[assignment]  # only this router sets it
        if binding is None:
            if notification.status != "firing":
                return  # nothing of this group was ever delivered: nothing to resolve
            binding = self._bind(notification)
            if binding is None:
                return
            group.binding = binding
        notifier, key = binding
        if key is not None:
            notification = dataclasses.replace(notification, routing_key=key)
        notifier.enqueue(notification)

    def _bind(self, notification: Notification) -> Binding | None:
        """Where a group's pages go: the route's receiver, or for a pagerduty receiver without a routing key,
        the team's key from the catalog, else its fallback receiver (followed), else nowhere (counted)."""
        labels = notification.example.labels
        team, service = labels.get("team", ""), labels.get("service", "")
        notifier = self._notifiers[notification.receiver]
        seen = {notifier.name}
        while True:
            if not isinstance(notifier, PagerDutyNotifier):
                return notifier, None
            if notifier.routing_key:
                return notifier, notifier.routing_key
            key = self._ownership.get().pagerduty_key_for(service, team)
            if key:
                return notifier, Opaque(key)
            fallback = notifier.fallback_receiver
            if fallback and fallback not in seen and fallback in self._notifiers:
                seen.add(fallback)
                notifier = self._notifiers[fallback]
                continue
            self._metrics.undeliverable.labels(notifier.name, team).inc()
            self._logger.warning(
                "alert_routing %s: no PagerDuty routing key for team %r (service %r) in receiver %s and no "
                "fallback_receiver: group %s not paged", self.id, team, service, notifier.name,
                notification.group_key,
            )
            return None

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        if self._tasks or self._closed:
            return
        self._host = host
        if "slo" in self._config.triggers:
            self._slo = self._find_slo(host)
        await self._ownership.start(host)  # a shared extension, or loads its own catalog (fails if no file loads)
        if self._silences is not None:
            reload_task = self._silences.start()  # loads the file (raises SilencesError if it is invalid)
            if reload_task is not None:
                self._keep(reload_task)
        authenticators = {r.name: client_authenticator(host, r.auth, f"processor {self.id} receiver {r.name!r}")
                          for r in self._config.receivers if r.auth is not None}
        self._session = aiohttp.ClientSession()
        for notifier in self._notifiers.values():
            self._keep(await notifier.start(self._session, authenticators.get(notifier.name)))
        await self._engine.start()
        if self._engine.task is not None:
            self._keep(self._engine.task)
        if self._slo is not None:
            self._slo.add_listener(self.on_slo_statuses)
            self.on_slo_statuses(self._slo.statuses)  # burns it already knows of (restored at its start)

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.append(task)
        if self._host is not None:
            self._host.watch(task, self._logger, f"alert_routing {self.id}")

    async def shutdown(self) -> None:
        """Flush groups never notified, send what the outboxes hold for up to ``shutdown_timeout``, drop the
        rest (counted and logged). Idempotent; safe before start."""
        if self._closed:
            return
        self._closed = True
        if self._slo is not None:
            self._slo.remove_listener(self.on_slo_statuses)
        try:
            flushed, discarded = await self._engine.close()
            timeout = float(self._config.shutdown_timeout)
            notifiers = list(self._notifiers.values())
            for n in notifiers:
                n.close()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(n.wait_idle() for n in notifiers))
            except TimeoutError:
                pass
            dropped = sum([await n.stop() for n in notifiers])
            log = self._logger.warning if dropped else self._logger.info
            log(
                "alert_routing %s stopped: %d groups flushed at shutdown, %d firing groups forgotten, "
                "%d notifications not delivered within %gs", self.id, flushed, discarded, dropped, timeout,
            )
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
            await self._ownership.shutdown()
            if self._silences is not None:
                await self._silences.shutdown()
            if self._session is not None:
                await self._session.close()
                self._session = None


def create(settings: Settings, config: Config, next_consumer: TracesConsumer | None = None) -> Any:
    return AlertRoutingProcessor(settings, config, next_consumer)
