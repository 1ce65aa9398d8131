"""The ``root_cause`` trace stage: walks each trace, leaves ``Failure``s in ``trace.notes``, annotates.

It lets every trace through. Traces the receiver found error-free cost nothing for the error walk (see
:mod:`pipelines.root_cause.walk`); traces with errors are indexed once and walked. With a latency
threshold configured, a trace whose spans span more than the shortest threshold (``Trace.end -
Trace.start``, kept by the trace buffer) is indexed and its slow signal spans that are not in error get
the latency walk (:mod:`pipelines.root_cause.critical_path`); other traces cost one comparison.
"""

from __future__ import annotations

from typing import Any

from collector import Host, Settings
from collector.consumer import Capabilities, TraceBufferSettings
from collector.model import Trace
from pipelines.ownership import OwnershipSource
from pipelines.root_cause.annotate import Annotator
from pipelines.root_cause.config import Config
from pipelines.root_cause.critical_path import find_slow
from pipelines.root_cause.model import FAILURES, LATENCY, Failure
from pipelines.root_cause.walk import SignalMatcher, find_failures, write_back

MAX_LABEL_VALUES = 1000  # distinct services / teams in the metric; beyond that: "other"
MAX_TOP_CAUSES = 1000  # distinct (service, span name, kind) tallied for the status page; beyond that: "other"
TOP_SHOWN = 20
UNKNOWN_TEAM = "unknown"


class _Labels:
    """Bounded label values: the first ``limit`` distinct values pass, the rest become "other"."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return "other"
        self.seen.add(value)
        return value


class RootCauseProcessor:
    """See the module docstring."""

    status_panel = "rootcauses"

    __slots__ = (
        "_annotate", "_annotator", "_capabilities", "_counters", "_latency_min", "_latency_root", "_latency_signals",
        "_limits", "_log", "_ownership", "_root_causes", "_services", "_signals", "_skipped", "_teams", "_top",
        "buffer_settings", "id",
    )

    def __init__(self, settings: Settings, config: Config) -> None:
        self.id = settings.id
        # A span with attribute error=true counts as failed: the wire walk must flag traces that have one.
        # With annotate, it writes rootcause.* attributes on signal spans.
        self._capabilities = Capabilities(mutates_data=config.annotate, trace_level=True,
                                          reads_error_attribute=True)
        self.buffer_settings = TraceBufferSettings(decision_wait=float(config.decision_wait))
        self._annotate = config.annotate
        self._annotator = Annotator()
        self._log = settings.logger
        self._signals = tuple(
            SignalMatcher(s.name, s.service, s.span_name, s.span_name_regex) for s in config.signals
        )
        self._limits = (config.max_root_causes, config.max_path_length, config.max_signals_per_trace)
        # The latency walk: (matcher, threshold ns) per signal, or the default signal's threshold; a trace
        # whose spans span no more than the shortest threshold has no slow signal (0: no latency walk).
        self._latency_signals = tuple(
            (m, _ns(s.latency_threshold)) for m, s in zip(self._signals, config.signals, strict=True))
        self._latency_root = 0 if config.signals else _ns(config.latency_threshold)
        positive = [t for _, t in self._latency_signals if t > 0] + ([self._latency_root] * (self._latency_root > 0))
        self._latency_min = min(positive) if positive else 0
        self._ownership = OwnershipSource(config.ownership, settings) if config.ownership is not None else None
        self._services = _Labels(MAX_LABEL_VALUES)
        self._teams = _Labels(MAX_LABEL_VALUES)
        self._counters: dict[tuple[str, str, str, str], Any] = {}
        # Primary root causes since start by (service, span name, kind): [count, latest trace id, team].
        self._top: dict[tuple[str, str, str], list[Any]] = {}
        t = settings.telemetry
        self._root_causes = t.counter(
            "tracetriage_root_causes_total",
            "Failed (kind=error) and slow (kind=latency) requests by signal and primary root cause (service "
            "and owning team).",
            ("signal", "service", "team", "kind"),
        )
        self._skipped = t.counter(
            "tracetriage_root_cause_signals_skipped_total",
            "Signal spans in error, or slow, not walked (more than max_signals_per_trace in one trace).",
            ("processor",),
        ).labels(str(settings.id))

    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def start(self, host: Host) -> None:
        if self._ownership is not None:
            await self._ownership.start(host)  # a shared extension, or loads its own catalog

    async def shutdown(self) -> None:
        if self._ownership is not None:
            await self._ownership.shutdown()

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        max_rc, max_path, max_signals = self._limits
        latency_min = self._latency_min
        counts: dict[tuple[str, str, str, str], int] = {}  # root causes by label set, counted once at the end
        for trace in traces:
            if not trace.maybe_error:  # (find_failures says so too: this saves a call per error-free trace)
                continue
            result = find_failures(trace, self._signals, max_root_causes=max_rc, max_path=max_path,
                                   max_signals=max_signals)
            if not result.failures:
                continue
            trace.notes[FAILURES] = result.failures
            if result.signals_skipped:
                self._skipped.inc(result.signals_skipped)
            for failure in result.failures:
                labels = self._labels(failure)
                counts[labels] = counts.get(labels, 0) + 1
                self._tally(failure, labels[2])
            if self._annotate:
                stale, spans = result.stale, result.signal_spans
                for i, failure in enumerate(result.failures):
                    self._annotator(spans[i], failure.primary, stale[i])
                write_back(result)
        if latency_min:  # after every error walk: the error walk's annotations are in the trace's bytes
            for trace in traces:
                if trace.end - trace.start > latency_min:
                    self._latency(trace, counts)
        for labels, n in counts.items():
            counter = self._counters.get(labels)
            if counter is None:  # the label lookup costs more than the count: children kept per label set
                if len(self._counters) >= 4 * MAX_LABEL_VALUES:
                    self._counters.clear()
                counter = self._counters[labels] = self._root_causes.labels(*labels)
            counter.inc(n)
        return traces

    def _latency(self, trace: Trace, counts: dict[tuple[str, str, str, str], int]) -> None:
        """The latency walk of a trace that may have a slow signal (after the error walk)."""
        _, max_path, max_signals = self._limits
        result = find_slow(trace, self._latency_signals, self._latency_root, max_path=max_path,
                           max_signals=max_signals)
        if result.signals_skipped:
            self._skipped.inc(result.signals_skipped)
        if not result.failures:
            return
        errors: list[Failure] | None = trace.note(FAILURES)
        trace.notes[FAILURES] = result.failures if not errors else errors + result.failures
        for failure in result.failures:
            labels = self._labels(failure)
            counts[labels] = counts.get(labels, 0) + 1
            self._tally(failure, labels[2])
        if self._annotate:
            stale, spans = result.stale, result.signal_spans
            for i, failure in enumerate(result.failures):
                self._annotator(spans[i], failure.primary, stale[i], LATENCY)
            write_back(result)

    def _tally(self, failure: Failure, team: str) -> None:
        cause = failure.primary
        key = (cause.service, cause.span_name, failure.kind)
        entry = self._top.get(key)
        if entry is None:
            if len(self._top) >= MAX_TOP_CAUSES:
                key = ("other", "", failure.kind)
                entry = self._top.get(key)
            if entry is None:
                entry = self._top[key] = [0, b"", team]
        entry[0] += 1
        entry[1] = failure.trace_id

    def status(self, limit: int = TOP_SHOWN) -> dict[str, Any]:
        """For the status page: the primary root causes seen since start, most frequent first (the top
        ``limit`` by service and span name, and the totals by service), each with its latest trace id."""
        by_service: dict[str, list[Any]] = {}
        for (service, _, _), (count, trace_id, team) in self._top.items():
            agg = by_service.get(service)
            if agg is None:
                by_service[service] = [count, trace_id, team]
            else:
                agg[0] += count
        top = sorted(self._top.items(), key=lambda kv: -kv[1][0])[:limit]
        return {
            "panel": "rootcauses",
            "total": sum(v[0] for v in self._top.values()),
            "services": [{"service": s, "team": v[2], "count": v[0], "example_trace_id": v[1].hex()}
                         for s, v in sorted(by_service.items(), key=lambda kv: -kv[1][0])[:limit]],
            "causes": [{"service": k[0], "span_name": k[1], "kind": k[2], "team": v[2], "count": v[0],
                        "example_trace_id": v[1].hex()} for k, v in top],
        }

    def _labels(self, failure: Failure) -> tuple[str, str, str, str]:
        cause = failure.primary
        team = UNKNOWN_TEAM
        if self._ownership is not None:
            # The root-cause span's resource describes the caller when the callee is blamed.
            attrs = None if cause.blamed_callee else cause.resource_attributes
            team = self._ownership.get().owner_of(cause.service, attrs).name
        return failure.signal, self._services(cause.service), self._teams(team), failure.kind


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
