"""The ``slo`` trace stage: measures objectives on every trace, evaluates their burn, keeps the state.

``process_traces`` only looks. Per trace it finds the signal spans of every objective
(:mod:`pipelines.slo.select`: from the wire bytes, decoding only candidate spans), classifies each as good
or bad, and for a bad one finds its cause: for an error, the root cause ``root_cause`` left in
``trace.notes``; for a slow signal span, the span on its critical path with the largest exclusive time
(``root_cause``'s latency failure, else :func:`pipelines.root_cause.latency_cause`, run here for bad events
only) and the critical path, for the page. Counts
are added once per call, into the current bucket of each objective (:mod:`pipelines.slo.window`).

A background task evaluates every objective each ``evaluation_interval`` (:mod:`pipelines.slo.burn`):
gauges in ``/metrics``, then the listeners (``alert_routing`` with ``trigger: slo`` or ``both``) get the
statuses. Another task reloads changed objective files; a third checkpoints the state through the
``file_storage`` extension (and once more at shutdown).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import thread_time
from typing import Any

from collector import ComponentID, Host, Kind, Settings
from collector.consumer import Capabilities, TraceBufferSettings
from collector.errors import ComponentStartError
from collector.model import Trace
from collector.trace_buffer import stage_cpu_counter
from pipelines.root_cause import latency_cause
from pipelines.root_cause.model import FAILURES, LATENCY, Failure
from pipelines.root_cause.walk import in_error
from pipelines.slo import burn
from pipelines.slo.burn import ObjectiveStatus
from pipelines.slo.causes import UNKNOWN, dominant
from pipelines.slo.checkpoint import Checkpoint, CheckpointError
from pipelines.slo.config import Config
from pipelines.slo.model import BurnAlertSpec, Objective, duration_text
from pipelines.slo.openslo import ObjectiveError
from pipelines.slo.select import SignalFinder
from pipelines.slo.source import ObjectiveSource
from pipelines.slo.window import Series

Listener = Callable[[Sequence[ObjectiveStatus]], None]
Cause = tuple[str, str, tuple[str, ...], int]  # (cause service, trace id hex, path, bad events it stands for)
Slow = tuple[Trace, bytes]  # a slow signal span, its cause still to find: (trace, span id)

# Slow signal spans walked per objective and process_traces call (a round of at most 2,000 traces). When more
# are slow, evenly spaced ones are walked and each is tallied for its share of the round's slow spans: bad
# counts stay exact, cause shares are estimated from a sample (what costs is indexing each trace).
MAX_LATENCY_WALKS = 8
HISTORY = 180  # evaluations of burn rates kept per objective for the status page's charts


def _error_cause(trace: Trace, span_id: bytes) -> tuple[str, tuple[str, ...]]:
    """The cause of a signal span in error: the primary root cause of root_cause's failure for this span;
    when root_cause walked from other signal spans (its ``signals`` differ), the trace's first failure;
    without root_cause's failures, unknown."""
    failures: list[Failure] | None = trace.note(FAILURES)
    if not failures:
        return UNKNOWN, ()
    first: Failure | None = None
    sid = span_id
    for f in failures:
        if getattr(f, "kind", "error") != "error":
            continue
        if f.signal_span_id == sid:
            return f.primary.service, f.primary.path
        if first is None:
            first = f
    if first is not None:
        return first.primary.service, first.primary.path
    return UNKNOWN, ()


CRITICAL_PATH_SPANS = 8  # spans of a latency cause's critical path kept for its page (those with the most self time)


def critical_path_text(failure: Failure) -> tuple[str, ...]:
    """A latency failure's critical path as a cause's path: ``"service:span name 812 ms"`` per span, in path
    order; when spans were left out (those with the least self time), a last element says how many."""
    steps = tuple(f"{s.span} {s.self_time_ms:.3g} ms" for s in failure.critical_path)
    left = failure.critical_path_length - len(steps)
    return (*steps, f"(+{left} spans with less own time)") if left > 0 else steps


def _latency_cause(trace: Trace, span_id: bytes, signal: str) -> tuple[str, tuple[str, ...]]:
    """The cause of a slow signal span (docs/design.md, "The latency walk"): the span on its critical path
    with the largest exclusive time, and the critical path. root_cause's latency failure for this span when
    it wrote one, else the walk, run here (only for bad events: one index of the trace per call)."""
    failures: list[Failure] | None = trace.note(FAILURES)
    if failures:
        for f in failures:
            if getattr(f, "kind", "error") == LATENCY and f.signal_span_id == span_id:
                return f.primary.service, critical_path_text(f)
    found = latency_cause(trace, span_id, signal=signal, max_path_length=CRITICAL_PATH_SPANS)
    if found is None:  # not in the trace's index (cannot happen for a span the selector found)
        return UNKNOWN, ()
    return found.primary.service, critical_path_text(found)


class _Tracked:
    """One objective being measured: its series, what alerts it, and its metric children."""

    __slots__ = ("alerts", "bad", "bad_metric", "durations", "good", "good_metric", "history", "inclusive",
                 "latency", "min_share", "objective", "series", "since", "slow", "threshold_ns")

    def __init__(self, objective: Objective, series: Series, alerts: tuple[BurnAlertSpec, ...], min_share: float,
                 events: Any) -> None:
        self.objective = objective
        self.series = series
        self.alerts = alerts
        self.min_share = min_share
        ind = objective.indicator
        self.latency = ind.kind == "latency"
        self.threshold_ns = round(ind.threshold_ms * 1e6)
        self.inclusive = ind.inclusive
        self.since: dict[str, float] = {}  # str(alert spec) -> when it started firing
        # (evaluation time, burn rate per window) of the last evaluations, for the status page's charts
        self.history: collections.deque[tuple[float, dict[str, float]]] = collections.deque(maxlen=HISTORY)
        self.good_metric = events.labels(objective.name, "good")
        self.bad_metric = events.labels(objective.name, "bad")
        # What the current process_traces call measured (added to the series once, at its end)
        self.good = 0
        self.bad: list[Cause] = []
        self.slow: list[Slow] = []  # latency: bad events whose cause is found at the end of the call
        self.durations: list[int] = []  # of latency signal spans, in nanoseconds


class _Plan:
    """The objectives' selectors, each once, and which objectives each one feeds."""

    __slots__ = ("by_selector", "finder", "tracked")

    def __init__(self, tracked: Iterable[_Tracked]) -> None:
        selectors: dict[Any, list[_Tracked]] = {}
        for t in tracked:
            selectors.setdefault(t.objective.indicator.selector, []).append(t)
        self.finder = SignalFinder(list(selectors))
        self.by_selector = tuple(tuple(ts) for ts in selectors.values())
        self.tracked = tuple(t for ts in self.by_selector for t in ts)


# It only looks. An availability objective's signal spans are good without being decoded when the receiver's
# wire walk found no ERROR status and no ``error`` attribute in the trace (``Trace.maybe_error``).
_CAPABILITIES = Capabilities(trace_level=True, reads_error_attribute=True)


class SloProcessor:
    """See the module docstring."""

    status_panel = "slos"


    def __init__(self, settings: Settings, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.id = settings.id
        self.buffer_settings = TraceBufferSettings(decision_wait=float(config.decision_wait))
        self.config = config
        self._clock = clock
        self._log = settings.logger
        self._default_alerts = config.alert_specs
        self._source = ObjectiveSource(config.files, config.slos, config.default_window, config.max_objectives,
                                       settings.logger, float(config.bucket_width))
        t = settings.telemetry
        label = str(settings.id)
        self._events = t.counter("tracetriage_slo_events_total",
                                 "Signal spans measured by SLO objective and outcome (good or bad).",
                                 ("slo", "outcome"))
        self._burn_rate = t.gauge("tracetriage_slo_burn_rate",
                                  "Error ratio over the window divided by the objective's error budget (1 - target).",
                                  ("slo", "window"))
        self._budget = t.gauge("tracetriage_slo_error_budget_remaining",
                               "Share of the error budget left over the objective's time window (negative: "
                               "overspent).", ("slo",))
        self._firing = t.gauge("tracetriage_slo_alert_firing",
                               "1 while both windows of the burn-rate alert exceed its rate.",
                               ("slo", "severity", "long_window", "short_window"))
        self._overflow = t.counter("tracetriage_slo_cause_overflow_total",
                                   "Bad events tallied as cause 'other': their minute bucket already held "
                                   "max_causes_per_bucket causes.", ("slo",))
        self._objectives_gauge = t.gauge("tracetriage_slo_objectives", "Objectives measured.",
                                         ("processor",)).labels(label)
        self._skipped = t.counter("tracetriage_slo_signals_skipped_total",
                                  "Signal spans not measured: more than max_signals_per_trace in one trace.",
                                  ("processor",)).labels(label)
        self._reloads = t.counter("tracetriage_slo_reloads_total",
                                  "Objective file changes taken (ok) or refused as a whole (failed).",
                                  ("processor", "outcome"))
        self._checkpoints = t.counter("tracetriage_slo_checkpoints_total",
                                      "State checkpoints written through file_storage (ok) or not (failed).",
                                      ("processor", "outcome"))
        self._checkpoint_bytes = t.gauge("tracetriage_slo_checkpoint_bytes", "Size of the last checkpoint.",
                                         ("processor",)).labels(label)
        self._cpu = stage_cpu_counter(t).labels(label)  # the evaluation's CPU (process_traces': the buffer's)
        self._tracked: dict[str, _Tracked] = {}
        self._plan = _Plan(())
        self._apply(self._source.load())  # raises ObjectiveError: refused before anything starts
        self._listeners: list[Listener] = []
        self._statuses: list[ObjectiveStatus] = []
        self._checkpoint: Checkpoint | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._host: Host | None = None
        self._started = False
        self._closed = False

    # -- objectives --------------------------------------------------------------------------------------

    @property
    def objectives(self) -> list[Objective]:
        return [t.objective for t in self._tracked.values()]

    def series(self, name: str) -> Series:
        return self._tracked[name].series

    def alerts_of(self, objective: Objective) -> tuple[BurnAlertSpec, ...]:
        return objective.alerts if objective.alerts is not None else self._default_alerts

    def _apply(self, objectives: Sequence[Objective]) -> None:
        """Measure ``objectives`` from now on; an objective whose name and fingerprint are unchanged keeps its
        measured state."""
        old = self._tracked
        new: dict[str, _Tracked] = {}
        now = self._clock()
        cfg = self.config
        for o in objectives:
            alerts = self.alerts_of(o)
            span = max([o.window, *(a.long_window for a in alerts)])
            share = o.min_cause_share if o.min_cause_share is not None else cfg.min_cause_share
            prev = old.get(o.name)
            series = Series(span, o.indicator.kind == "latency", cfg.max_causes_per_bucket, cfg.examples_per_cause,
                            float(cfg.bucket_width))
            if prev is not None and prev.objective.fingerprint() == o.fingerprint():
                if prev.series.hours.size == series.hours.size and prev.series.max_causes == series.max_causes:
                    series = prev.series
                else:
                    series.restore(prev.series.to_state(), now)
            t = new[o.name] = _Tracked(o, series, alerts, share, self._events)
            if prev is not None and series is prev.series and prev.alerts == alerts:
                t.since = prev.since
        for name in old.keys() - new.keys():
            self._forget(old[name])
        self._tracked = new
        self._plan = _Plan(new.values())
        self._objectives_gauge.set(len(new))

    def _forget(self, t: _Tracked) -> None:
        """Remove the metric children of an objective no longer measured."""
        name = t.objective.name
        for metric, labels in ((self._events, (name, "good")), (self._events, (name, "bad")),
                               (self._budget, (name,)), (self._overflow, (name,))):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        for spec in t.alerts:
            with contextlib.suppress(KeyError):
                self._firing.remove(name, spec.severity, spec.long_text, spec.short_text)
        for w in burn.windows_of(t.objective, t.alerts):
            with contextlib.suppress(KeyError):
                self._burn_rate.remove(name, duration_text(w))

    def reload(self) -> bool:
        """Check the objective files now (blocking I/O); True when a new set was taken."""
        return self._take(self._source.check())

    def _take(self, objectives: list[Objective] | None) -> bool:
        if objectives is None:
            if self._source.problems:  # a changed set, refused (logged by the source)
                self._reloads.labels(str(self.id), "failed").inc()
                self._source.problems = []
            return False
        self._apply(objectives)
        self._reloads.labels(str(self.id), "ok").inc()
        self._log.info("slo %s: objectives reloaded: %s", self.id, ", ".join(o.name for o in objectives))
        return True

    # -- span path ---------------------------------------------------------------------------------------

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        plan = self._plan
        finder = plan.finder
        find, wants = finder.find, finder.wants
        by_selector = plan.by_selector
        max_signals = self.config.max_signals_per_trace
        skipped = 0
        measured = False
        for trace in traces:
            for origin in trace.chunks:  # most traces: no origin of a service an objective names
                w = wants.get(origin)
                if w is None or w:
                    break
            else:
                continue
            found = find(trace)
            if not found:
                continue
            measured = True
            if len(found) > max_signals:
                skipped += len(found) - max_signals
                del found[max_signals:]
            # False: the receiver's wire walk saw neither an ERROR status nor an ``error`` attribute in the
            # trace, so no signal span is in error (reads_error_attribute asks it to look for both)
            maybe_error = trace.maybe_error
            for sig in found:
                for t in by_selector[sig.index]:
                    if t.latency:
                        ns = sig.end - sig.start
                        t.durations.append(ns)
                        if ns <= t.threshold_ns if t.inclusive else ns < t.threshold_ns:
                            t.good += 1
                            continue
                        t.slow.append((trace, sig.span_id))
                        continue
                    elif maybe_error and in_error(sig.span()):
                        cause, path = _error_cause(trace, sig.span_id)
                    else:
                        t.good += 1
                        continue
                    t.bad.append((cause, trace.trace_id.hex(), path, 1))
        if measured:
            now = self._clock()
            for t in plan.tracked:
                if t.slow:
                    self._explain_slow(t)
                if t.good or t.bad or t.durations:
                    self._record(t, now)
        if skipped:
            self._skipped.inc(skipped)
        return traces

    @staticmethod
    def _explain_slow(t: _Tracked) -> None:
        """Find the causes of ``t``'s slow signal spans of this call: every one's when at most
        MAX_LATENCY_WALKS, else those of evenly spaced ones, each standing for its share of the rest."""
        slow, name, bad = t.slow, t.objective.name, t.bad
        n = len(slow)
        k = min(n, MAX_LATENCY_WALKS)
        for i in range(k):
            lo, hi = i * n // k, (i + 1) * n // k
            trace, span_id = slow[lo]
            cause, path = _latency_cause(trace, span_id, name)
            bad.append((cause, trace.trace_id.hex(), path, hi - lo))
        t.slow = []

    def _record(self, t: _Tracked, now: float) -> None:
        """Add what ``t`` measured (``good``, ``bad``, ``durations``) to its series, and reset them."""
        series = t.series
        good, bad = t.good, t.bad
        nbad = sum(b[3] for b in bad)
        slots = series.add(now, good, nbad)
        if bad:
            before = series.overflow
            for cause, tid, path, n in bad:
                series.cause(slots, cause, tid, path, n)
            if series.overflow != before:
                self._overflow.labels(t.objective.name).inc(series.overflow - before)
            t.bad_metric.inc(nbad)
            t.bad = []
        if t.durations:
            series.durations_ns(now, t.durations)
            t.durations = []
        if good:
            t.good_metric.inc(good)
            t.good = 0

    def record(self, name: str, good: int, bad: int = 0, causes: Mapping[str, int] | None = None,
               durations: Sequence[float] = ()) -> None:
        """Count events measured elsewhere, as aggregated counts at the clock's now (simulations, tests):
        ``causes`` gives how many of the ``bad`` events each cause had (the rest are unknown)."""
        t = self._tracked[name]
        named = sum((causes or {}).values())
        if named > bad:
            raise ValueError(f"causes name {named} bad events, more than the {bad} counted")
        now = self._clock()
        t.good += good
        self._record(t, now)
        t.series.durations(now, durations)
        series = t.series
        slots = series.add(now, 0, bad)
        before = series.overflow
        for cause, n in [*(causes or {}).items(), (UNKNOWN, bad - named)]:
            if n:
                series.cause(slots, cause, "", (), n)
        if series.overflow != before:
            self._overflow.labels(name).inc(series.overflow - before)
        if bad:
            t.bad_metric.inc(bad)

    # -- evaluation --------------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """``listener(statuses)`` is called after each evaluation, on the event loop; it must not block."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def statuses(self) -> list[ObjectiveStatus]:
        """The last evaluation's."""
        return self._statuses

    def evaluate(self) -> list[ObjectiveStatus]:
        """Evaluate every objective now, update the gauges, tell the listeners."""
        t0 = thread_time()
        try:
            return self._evaluate()
        finally:
            self._cpu.inc(thread_time() - t0)

    def _evaluate(self) -> list[ObjectiveStatus]:
        now = self._clock()
        out: list[ObjectiveStatus] = []
        for t in self._tracked.values():
            st = burn.evaluate(t.objective, t.series, now, t.alerts, t.min_share, t.since)
            name = t.objective.name
            self._budget.labels(name).set(st.budget_remaining)
            for window, rate in st.burn_rates.items():
                self._burn_rate.labels(name, window).set(rate)
            t.history.append((now, st.burn_rates))
            for a in st.alerts:
                self._firing.labels(name, a.spec.severity, a.spec.long_text, a.spec.short_text).set(
                    1 if a.firing else 0)
            out.append(st)
        self._statuses = out
        for listener in list(self._listeners):
            try:
                listener(out)
            except Exception:  # noqa: BLE001 - logged with its traceback, see below
                # A listener's bug must not stop the evaluation of the others; it is logged with its traceback.
                self._log.exception("slo %s: a listener failed on the evaluation", self.id)
        return out

    def status(self, limit: int = 50) -> dict[str, Any]:
        """For the status page: each objective's last evaluation (budget left, burn rate per window, its
        alerts), the burn rates of its last evaluations for the charts, and the dominant cause of the bad
        events over its longest alert window (the largest cause when none reaches ``min_cause_share``)."""
        now = self._clock()
        statuses = {st.objective.name: st for st in self._statuses}
        out = []
        for name, t in list(self._tracked.items())[:limit]:
            o = t.objective
            st = statuses.get(name)
            longest = max((a.long_window for a in t.alerts), default=o.window)
            causes = t.series.causes(now, longest)
            top = dominant(causes, t.min_share)
            out.append({
                "name": name, "display_name": o.display_name, "service": o.service, "target": o.target,
                "window": o.window_text, "indicator": o.indicator.describe(),
                "budget_remaining": st.budget_remaining if st is not None else None,
                "burn_rates": dict(st.burn_rates) if st is not None else {},
                "alerts": [{"severity": a.spec.severity, "burn_rate": a.spec.burn_rate,
                            "long_window": a.spec.long_text, "short_window": a.spec.short_text,
                            "long_burn": a.long_burn, "short_burn": a.short_burn, "firing": a.firing}
                           for a in (st.alerts if st is not None else ())],
                "cause_window": duration_text(longest),
                "dominant_cause": None if top is None else top.cause,
                "causes": [{"cause": c.cause, "share": c.share, "count": c.count,
                            "example_trace_id": c.examples[0] if c.examples else ""} for c in causes[:5]],
                "history": [[at, rates] for at, rates in t.history],
            })
        return {"panel": "slos", "processor": str(self.id), "objectives": out}

    # -- state -------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds (see :mod:`pipelines.slo.checkpoint`)."""
        return {
            "saved_at": self._clock(),
            "objectives": {
                name: {"fingerprint": t.objective.fingerprint(), "series": t.series.to_state(), "since": dict(t.since)}
                for name, t in self._tracked.items()
            },
        }

    def restore(self, state: dict[str, Any]) -> list[str]:
        """Put back the state of every objective with the same name and fingerprint; returns their names."""
        now = self._clock()
        restored: list[str] = []
        for name, saved in state.get("objectives", {}).items():
            t = self._tracked.get(name)
            if t is None:
                self._log.info("slo %s: checkpoint of objective %s ignored: no longer defined", self.id, name)
                continue
            if saved.get("fingerprint") != t.objective.fingerprint():
                self._log.warning("slo %s: checkpoint of objective %s ignored: its selector or SLI changed",
                                  self.id, name)
                continue
            t.series.restore(saved.get("series", {}), now)
            keys = {str(a) for a in t.alerts}
            t.since = {k: float(v) for k, v in saved.get("since", {}).items() if k in keys}
            restored.append(name)
        return restored

    async def save(self) -> None:
        """Write a checkpoint now (when storage is configured)."""
        if self._checkpoint is None:
            return
        state = self.state()
        label = str(self.id)
        try:
            size = await asyncio.to_thread(self._checkpoint.save, state)
        except OSError as e:
            self._checkpoints.labels(label, "failed").inc()
            self._log.error("slo %s: checkpoint to %s failed: %s", self.id, self._checkpoint.path, e)
            return
        self._checkpoints.labels(label, "ok").inc()
        self._checkpoint_bytes.set(size)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    async def start(self, host: Host) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._host = host
        if self.config.storage is not None:
            self._checkpoint = self._open_storage(host, self.config.storage)
            try:
                saved = await asyncio.to_thread(self._checkpoint.load)
            except CheckpointError as e:
                self._log.error("slo %s: %s; starting without the saved state", self.id, e)
                saved = None
            if saved is not None:
                names = self.restore(saved)
                self._log.info("slo %s: state of %d objectives restored from %s", self.id, len(names),
                               self._checkpoint.path)
        self.evaluate()
        self._keep(self._loop(float(self.config.evaluation_interval), self._evaluate_tick), "evaluate")
        if self.config.files and self.config.reload_interval > 0:
            self._keep(self._loop(float(self.config.reload_interval), self._reload_tick), "reload")
        if self._checkpoint is not None:
            self._keep(self._loop(float(self.config.checkpoint_interval), self.save), "checkpoint")

    def _open_storage(self, host: Host, storage: str) -> Checkpoint:
        from collector.extensions.file_storage import FileStorageExtension

        who = f"processor {self.id}"
        ext = host.extensions.get(ComponentID.parse(storage))
        if ext is None:
            raise ComponentStartError(who, f"storage refers to extension {storage!r}, which is not defined in "
                                           f"extensions or not enabled in service.extensions")
        if not isinstance(ext, FileStorageExtension):
            raise ComponentStartError(who, f"storage: extension {storage!r} is not a file_storage")
        try:
            return Checkpoint(ext.directory_for(Kind.PROCESSOR, self.id), ext.fsync)
        except OSError as e:
            raise ComponentStartError(who, f"cannot use the storage directory: {e}") from e

    async def _evaluate_tick(self) -> None:
        self.evaluate()

    async def _reload_tick(self) -> None:
        if self._take(await asyncio.to_thread(self._source.check)):
            self.evaluate()

    @staticmethod
    async def _loop(interval: float, tick: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            await tick()

    def _keep(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"slo-{name} {self.id}")
        self._tasks.append(task)
        if self._host is not None:
            self._host.watch(task, self._log, f"slo {self.id}")

    async def shutdown(self) -> None:
        """Stop the tasks and write a last checkpoint. Idempotent; safe before start."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.save()


def create(settings: Settings, config: Config, next_consumer: Any = None) -> SloProcessor:
    """Trace-level stages are fed by the pipeline's trace buffer: ``next_consumer`` is not used. Raises
    ObjectiveError (a ValueError) when the objectives are invalid."""
    return SloProcessor(settings, config)


__all__ = ["ObjectiveError", "SloProcessor", "create"]
