"""The ``tail_sampling`` stage: evaluates every policy for each whole trace the pipeline's trace buffer
hands it, combines the votes as the OTel Collector does and returns the traces to keep.

Combination: drop policies run first and a DROPPED vote ends the evaluation and drops the trace; then an
INVERTED_NOT_SAMPLED vote drops it; then any SAMPLED vote keeps it; then an INVERTED_SAMPLED vote keeps
it when no policy voted NOT_SAMPLED; otherwise it is dropped. With ``sample_on_first_match`` evaluation
stops at the first SAMPLED vote. A policy that fails counts in ``sampling_policy_evaluation_error`` and
does not vote.

The buffer owns timing, the decision cache and memory; this stage only decides. On each trace it passes on
it records the deciding policy's name in ``trace.notes["tail_sampling.policy"]`` (with ``dry_run``, the
dropping one's on a trace it would have dropped); the recent-decisions ring has it for every trace.

What kept spans carry:

* ``record_policy``: contrib's ``tailsampling.policy`` (the deciding top-level policy's name) and
  ``tailsampling.composite_policy`` (the composite sub-policy that sampled), and on late spans released by
  the decision cache ``tailsampling.cached_decision`` = true (with the policy, while the recent-decisions
  ring remembers it). As in contrib they are attributes of the spans' instrumentation scope.
* The probability each span was kept with, as ``th`` in the ``ot`` entry of its tracestate
  (:mod:`pipelines.tail_sampling.sample_rate`), when a policy kept the trace by a random draw
  (``ema_throughput``; ``probabilistic`` with ``use_tracestate``) and, with ``use_tracestate``, ``th:0`` on
  traces kept for certain. Of several policies that sampled, the least strict decides (contrib's rule).
  ``adjusted_count.enabled`` adds the span attribute ``sampling.adjusted_count`` = 1 / probability.
* ``dry_run``: every trace is kept; its spans' scope gets ``tailsampling.dry_run.kept`` (what the decision
  would have been) and ``tailsampling.dry_run.policy`` (the deciding policy), and the would-be volumes are
  counted in ``tracetriage_tail_sampling_dry_run_traces`` / ``_spans``. Nothing else is written.

Every decision is remembered in a bounded ring (``recent_decisions``, :mod:`pipelines.tail_sampling.decisions`)
that ``GET /debug/traces/{trace_id}`` answers from when ``service.telemetry.debug`` is on.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from collector.component import Host, Settings
from collector.consumer import Capabilities, TraceBufferSettings, TracesConsumer
from collector.model import Origin, Trace
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.decisions import DecisionRing, handler
from pipelines.tail_sampling.policies import Decision, Policy, PolicyEvaluationError, build
from pipelines.tail_sampling.policies.base import NOTE_COMPOSITE, NOTE_PROBABILITY, probability_of
from pipelines.tail_sampling.policies.ema_throughput import EmaThroughput
from pipelines.tail_sampling.policies.probabilistic import Probabilistic
from pipelines.tail_sampling.sample_rate import (
    TraceStateError,
    combined_threshold,
    threshold_to_probability,
    with_threshold,
)

PREFIX = "otelcol_processor_tail_sampling_"
NOTE_POLICY = "tail_sampling.policy"
ATTR_POLICY = "tailsampling.policy"
ATTR_COMPOSITE = "tailsampling.composite_policy"
ATTR_CACHED = "tailsampling.cached_decision"
ATTR_DRY_KEPT = "tailsampling.dry_run.kept"
ATTR_DRY_POLICY = "tailsampling.dry_run.policy"
ROUTE = "/debug/traces/{trace_id}"
MAX_SCOPES = 4096  # origins with added scope attributes, remembered (cleared when full)
# Microsecond buckets for sampling_decision_latency (observed once per policy and decision round, with the
# mean time per trace).
LATENCY_BUCKETS_US = (1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000, 3000, 4000,
                      5000, 10000, 20000, 30000, 50000)

_SAMPLED, _NOT_SAMPLED, _DROPPED = Decision.SAMPLED, Decision.NOT_SAMPLED, Decision.DROPPED
_INV_SAMPLED, _INV_NOT_SAMPLED = Decision.INVERTED_SAMPLED, Decision.INVERTED_NOT_SAMPLED
_ERROR = Decision.ERROR
_UNDECIDED = (Decision.NOT_SAMPLED, "")
_NAMES = {_SAMPLED: "sampled", _NOT_SAMPLED: "not_sampled", _DROPPED: "dropped"}  # final decisions, for the ring
HISTORY_MINUTES = 61  # per-minute vote counts kept for the status page (its 5 minute and 1 hour views)
# Vote -> column of a history row: 0 sampled, 1 not sampled, 2 dropped.
_COLUMN = {Decision.SAMPLED: 0, Decision.INVERTED_SAMPLED: 0, Decision.NOT_SAMPLED: 1,
           Decision.INVERTED_NOT_SAMPLED: 1, Decision.DROPPED: 2}
_VOTES = len(Decision)

# Label values (sampled, decision) of each vote, as contrib's decisionToAttributes.
_LABELS = {
    _SAMPLED: ("true", "sampled"), _INV_SAMPLED: ("true", "sampled"),
    _NOT_SAMPLED: ("false", "not_sampled"), _INV_NOT_SAMPLED: ("false", "not_sampled"),
    _DROPPED: ("false", "dropped"),
}


# A trace stage whose settings configure the pipeline's trace buffer; it only reads the traces.
_CAPABILITIES = Capabilities(trace_level=True, defines_buffer=True)


class _Metrics:
    """Policy-level metrics (the buffer-level ones belong to the trace buffer)."""

    __slots__ = ("dry_spans", "dry_traces", "errors", "global_sampled", "latency", "malformed_tracestate",
                 "ring_capacity", "ring_evicted", "ring_size", "spans_sampled", "traces_sampled")

    def __init__(self, settings: Settings) -> None:
        t = settings.telemetry
        self.traces_sampled = t.counter(
            PREFIX + "count_traces_sampled", "Count of traces that were sampled or not per sampling policy",
            ("policy", "sampled", "decision"),
        )
        self.spans_sampled = t.counter(
            PREFIX + "count_spans_sampled", "Count of spans that were sampled or not per sampling policy",
            ("policy", "sampled", "decision"),
        )
        self.global_sampled = t.counter(
            PREFIX + "global_count_traces_sampled",
            "Global count of traces that were sampled or not by at least one policy", ("sampled", "decision"),
        )
        self.latency = t.histogram(
            PREFIX + "sampling_decision_latency", "Latency (in microseconds) of a given sampling policy",
            ("policy",), buckets=LATENCY_BUCKETS_US,
        )
        self.errors = t.counter(
            PREFIX + "sampling_policy_evaluation_error", "Count of sampling policy evaluation errors"
        )
        lab = ("processor",)
        label = str(settings.id)
        self.dry_traces = t.counter("tracetriage_tail_sampling_dry_run_traces",
                                    "Traces a dry run kept, by the decision they would have had.",
                                    ("processor", "decision"))
        self.dry_spans = t.counter("tracetriage_tail_sampling_dry_run_spans",
                                   "Spans a dry run kept, by the decision their trace would have had.",
                                   ("processor", "decision"))
        self.malformed_tracestate = t.counter(
            "tracetriage_tail_sampling_malformed_tracestate",
            "Kept spans whose tracestate did not parse, left without th.", lab).labels(label)
        self.ring_size = t.gauge("tracetriage_tail_sampling_recent_decisions",
                                 "Decisions held in the recent-decisions ring.", lab).labels(label)
        self.ring_capacity = t.gauge("tracetriage_tail_sampling_recent_decisions_capacity",
                                     "Bound of the recent-decisions ring (recent_decisions).", lab).labels(label)
        self.ring_evicted = t.counter("tracetriage_tail_sampling_recent_decisions_evicted",
                                      "Decisions evicted from the full recent-decisions ring.", lab).labels(label)


class _Slot:
    """One top-level policy with its metric label and per-call tallies."""

    __slots__ = ("is_drop", "label", "latency", "policy", "spans", "traces")

    def __init__(self, policy: Policy, is_drop: bool, label: str, metrics: _Metrics) -> None:
        self.policy = policy
        self.is_drop = is_drop
        self.label = label
        self.latency = metrics.latency.labels(label)
        self.traces = [0] * _VOTES  # by vote, in this call
        self.spans = [0] * _VOTES


def walk(policy: Policy) -> Iterator[Policy]:
    """``policy`` and every sub-policy under it (``and``, ``composite``, ``not``, ``drop``)."""
    yield policy
    for child in getattr(policy, "subs", ()):
        yield from walk(getattr(child, "policy", child))
    for attr in ("sub", "_all"):
        inner = getattr(policy, attr, None)
        if inner is not None:
            yield from walk(inner)


def _any_value(v: object) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _set(attributes: Any, key: str, value: AnyValue) -> None:
    for kv in attributes:
        if kv.key == key:
            kv.value.CopyFrom(value)
            return
    attributes.append(KeyValue(key=key, value=value))


Attrs = tuple[tuple[str, object], ...]


class TailSamplingProcessor:
    """See the module docstring. ``clock`` gives the ``now`` handed to policies (monotonic seconds)."""

    status_panel = "sampling"

    __slots__ = ("_best", "_clock", "_counted_evictions", "_first_match", "_history", "_host", "_metrics", "_next",
                 "_scopes", "_slots", "_track", "buffer_settings", "config", "id", "ring")

    def __init__(self, settings: Settings, config: Config, next_consumer: TracesConsumer | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.id = settings.id
        self.config = config
        self.buffer_settings: TraceBufferSettings = config.buffer_settings
        self._next = next_consumer  # the buffer sends kept traces on; kept for the Processor contract
        self._clock = clock
        self._first_match = config.sample_on_first_match
        self._metrics = _Metrics(settings)
        prefix = f"{settings.id.name}." if settings.id.name else ""
        slots = [_Slot(build(p), p.type == "drop", prefix + p.name, self._metrics) for p in config.policies]
        # Drop policies first: their vote wins, and evaluation stops at it.
        self._slots = tuple([s for s in slots if s.is_drop] + [s for s in slots if not s.is_drop])
        self._track = False  # some policy records the probability it samples with
        for slot in self._slots:
            for p in walk(slot.policy):
                if isinstance(p, Probabilistic) and config.use_tracestate:
                    p.use_tracestate = True
                    self._track = True
                elif isinstance(p, EmaThroughput):
                    self._track = True
        self._best: list[tuple[float, int | None] | None] = []
        self._scopes: dict[tuple[Origin, Attrs], Origin] = {}
        self.ring = DecisionRing(config.recent_decisions)
        self._counted_evictions = 0
        self._metrics.ring_capacity.set(config.recent_decisions)
        self._host: Host | None = None
        # (minute, {policy label: [sampled, not sampled, dropped] traces}, [kept, not kept, dropped] traces):
        # one row per minute with decisions, the newest last.
        self._history: collections.deque[tuple[int, dict[str, list[int]], list[int]]] = collections.deque(
            maxlen=HISTORY_MINUTES)

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The top-level policies in evaluation order (drop policies first)."""
        return tuple(s.policy for s in self._slots)

    def decide(self, trace: Trace, now: float) -> tuple[Decision, str]:
        """The final decision (SAMPLED, NOT_SAMPLED or DROPPED) and the name of the deciding policy."""
        return self._decide_all([trace], now)[0]

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        now = self._clock()
        kept: list[Trace] = []
        sampled = not_sampled = dropped = 0
        cfg = self.config
        dry_run = cfg.dry_run
        decisions = self._decide_all(traces, now)
        best = self._best
        record = self.ring.record if self.ring.capacity > 0 else None
        wall = time.time()
        dry = [0, 0, 0, 0]  # kept traces, kept spans, dropped traces, dropped spans (would-be)
        for i, (trace, (decision, policy)) in enumerate(zip(traces, decisions, strict=True)):
            keep = decision is _SAMPLED
            if keep or dry_run:  # (only a trace passed on can be read after this; a dict a trace costs)
                trace.notes[NOTE_POLICY] = policy
            rate = best[i] if keep and best else None
            p, consistent = rate if rate is not None else (1.0, None)
            if keep:
                sampled += 1
            elif decision is _DROPPED:
                dropped += 1
            else:
                not_sampled += 1
            if dry_run:
                self._scope(trace, ((ATTR_DRY_KEPT, keep), (ATTR_DRY_POLICY, policy)))
                kept.append(trace)
                dry[0 if keep else 2] += 1
                dry[1 if keep else 3] += trace.span_count
            elif keep:
                self._annotate(trace, policy, p, consistent, cached=False)
                kept.append(trace)
            if record is not None:
                record(trace, _NAMES[decision], keep or dry_run, policy,
                       trace.note(NOTE_COMPOSITE) or "", p, consistent, dry_run, wall)
        self._flush_metrics(sampled, not_sampled, dropped, now)
        if dry_run:
            self._flush_dry_run(dry)
        self._flush_ring()
        return kept

    def process_late(self, traces: list[Trace], kept: bool) -> None:
        """Spans of traces decided earlier, released (``kept``) or dropped by the buffer's decision cache:
        counted in the ring; released ones get the decision's marks (``tailsampling.cached_decision``)."""
        for trace in traces:
            entry = self.ring.late(trace.trace_id, trace.span_count, kept) if self.ring.capacity > 0 else None
            if not kept:
                continue
            if self.config.dry_run:
                if entry is not None:
                    self._scope(trace, ((ATTR_DRY_KEPT, not entry.dry_dropped), (ATTR_DRY_POLICY, entry.policy)))
                continue
            if entry is None:  # forgotten by the ring: its probability is not known, so no th is written
                if self.config.record_policy:
                    self._scope(trace, ((ATTR_CACHED, True),))
                continue
            self._annotate(trace, entry.policy, entry.probability, entry.consistent, cached=True)

    def bind_buffer(self, buffered: Callable[[bytes], int | None]) -> None:
        """The trace buffer in front of this stage says how many spans it holds for a trace id (lookup)."""
        self.ring.pending = buffered

    def lookup(self, trace_id: bytes) -> dict[str, Any] | None:
        """What the recent-decisions ring knows of a trace (see :meth:`DecisionRing.lookup`)."""
        found = self.ring.lookup(trace_id)
        if found is not None:
            found["processor"] = str(self.id)
        return found

    # -- what kept spans carry --------------------------------------------------------------------------

    def _annotate(self, trace: Trace, policy: str, p: float, consistent: int | None, cached: bool) -> None:
        cfg = self.config
        if p < 1.0 or consistent is not None or cfg.use_tracestate or cfg.adjusted_count.enabled:
            self._write_rates(trace, p, consistent)
        if cfg.record_policy:
            attrs: list[tuple[str, object]] = []
            if policy:
                attrs.append((ATTR_POLICY, policy))
            composite = trace.note(NOTE_COMPOSITE)
            if composite and not cached:
                attrs.append((ATTR_COMPOSITE, composite))
            if cached:
                attrs.append((ATTR_CACHED, True))
            if attrs:
                self._scope(trace, tuple(attrs))

    def _write_rates(self, trace: Trace, p: float, consistent: int | None) -> None:
        """``th`` (and the adjusted-count attribute) on every span of a kept trace."""
        cfg = self.config
        write_th = p < 1.0 or consistent is not None or cfg.use_tracestate
        attribute = cfg.adjusted_count.attribute if cfg.adjusted_count.enabled else ""
        precision = cfg.sampling_precision
        malformed = 0
        for group in trace.groups():
            for span in group.scope_spans.spans:
                state = span.trace_state
                threshold = combined_threshold(state, p, consistent, precision)
                if write_th:
                    try:
                        span.trace_state = with_threshold(state, threshold)
                    except TraceStateError:
                        malformed += 1
                if attribute:
                    _set(span.attributes, attribute, AnyValue(double_value=1.0 / threshold_to_probability(threshold)))
        trace.mark_modified()
        if malformed:
            self._metrics.malformed_tracestate.inc(malformed)

    def _scope(self, trace: Trace, attrs: Attrs) -> None:
        """Set ``attrs`` on the instrumentation scope of every span of ``trace`` (new origins, remembered)."""
        scopes = self._scopes

        def moved(origin: Origin) -> Origin:
            key = (origin, attrs)
            found = scopes.get(key)
            if found is None:
                ss = ScopeSpans.FromString(origin.scope_fields)
                for k, v in attrs:
                    _set(ss.scope.attributes, k, _any_value(v))
                if len(scopes) >= MAX_SCOPES:
                    scopes.clear()
                found = scopes[key] = Origin(origin.resource_fields, ss.SerializeToString())
            return found

        trace.replace_origins(moved)

    def _flush_dry_run(self, dry: list[int]) -> None:
        label = str(self.id)
        m = self._metrics
        for decision, traces, spans in (("kept", dry[0], dry[1]), ("dropped", dry[2], dry[3])):
            if traces:
                m.dry_traces.labels(label, decision).inc(traces)
                m.dry_spans.labels(label, decision).inc(spans)

    def _flush_ring(self) -> None:
        m = self._metrics
        m.ring_size.set(len(self.ring))
        evicted = self.ring.evicted - self._counted_evictions
        if evicted:
            m.ring_evicted.inc(evicted)
            self._counted_evictions = self.ring.evicted

    def _decide_all(self, traces: list[Trace], now: float) -> list[tuple[Decision, str]]:
        """Decisions for ``traces``, evaluated policy by policy over all of them (one tight loop per policy
        instead of one call chain per trace and policy). Each trace sees the policies in the same order,
        stopping at the same vote, as when decided alone: a drop vote ends its evaluation, and so does a
        sampled vote with ``sample_on_first_match``. A policy's own state (rate limits) sees the traces
        in the same order too, so the votes are the same."""
        n = len(traces)
        # The first policy name per vote kind, per trace.
        sampled: list[str | None] = [None] * n
        inv_sampled: list[str | None] = [None] * n
        inv_not_sampled: list[str | None] = [None] * n
        not_sampled = [False] * n
        final: list[tuple[Decision, str] | None] = [None] * n  # DROPPED, decided early
        first_match = self._first_match
        track = self._track
        best: list[tuple[float, int | None] | None] = [None] * n if track else []
        self._best = best
        alive = list(range(n))  # traces still being evaluated
        errors = 0
        for slot in self._slots:
            if not alive:
                break
            policy = slot.policy
            name = policy.name
            evaluate = policy.evaluate
            votes: list[Decision] | None = None
            started = time.perf_counter_ns()
            evaluate_all = getattr(policy, "evaluate_all", None)
            if evaluate_all is not None:
                try:
                    votes = evaluate_all([traces[i] for i in alive], now)
                except (PolicyEvaluationError, DecodeError):
                    votes = None  # one by one below, each error counted against its trace
            if votes is None:
                votes = []
                vote_of = votes.append
                for i in alive:
                    try:
                        vote_of(evaluate(traces[i], now))
                    except (PolicyEvaluationError, DecodeError):
                        errors += 1
                        vote_of(_ERROR)
            # One observation per call, of the mean time per trace (an observation costs more than most
            # policies).
            slot.latency.observe((time.perf_counter_ns() - started) / 1000 / len(alive))
            slot_traces, slot_spans = slot.traces, slot.spans
            stopped = False
            for i, vote in zip(alive, votes, strict=True):
                if vote is _NOT_SAMPLED:
                    not_sampled[i] = True
                elif vote is _SAMPLED:
                    if sampled[i] is None:
                        sampled[i] = name
                    if track:
                        self._keep_best(best, i, traces[i], name)
                    if first_match:
                        stopped = True
                elif vote is _DROPPED:
                    final[i] = (_DROPPED, name)
                    stopped = True
                elif vote is _INV_NOT_SAMPLED:
                    if inv_not_sampled[i] is None:
                        inv_not_sampled[i] = name
                elif vote is _INV_SAMPLED:
                    if inv_sampled[i] is None:
                        inv_sampled[i] = name
                    if track:
                        self._keep_best(best, i, traces[i], name)
                else:
                    continue  # ERROR (or a vote no policy gives): not counted
                slot_traces[vote] += 1
                slot_spans[vote] += traces[i].span_count
            if stopped:
                alive = [i for i, vote in zip(alive, votes, strict=True)
                         if not (vote is _DROPPED or (first_match and vote is _SAMPLED))]
        if errors:
            self._metrics.errors.inc(errors)
        out: list[tuple[Decision, str]] = []
        for i in range(n):
            early = final[i]
            if early is not None:
                out.append(early)
            elif (name_ := inv_not_sampled[i]) is not None:
                out.append((_NOT_SAMPLED, name_))
            else:
                name_ = sampled[i]
                if name_ is None and not not_sampled[i]:
                    name_ = inv_sampled[i]
                out.append(_UNDECIDED if name_ is None else (_SAMPLED, name_))
        return out

    @staticmethod
    def _keep_best(best: list[tuple[float, int | None] | None], i: int, trace: Trace, name: str) -> None:
        """Of the policies that sampled a trace, the least strict decides its recorded probability."""
        rate = probability_of(trace, name) if trace.note(NOTE_PROBABILITY) is not None else (1.0, None)
        current = best[i]
        if current is None or rate[0] > current[0]:
            best[i] = rate

    def _flush_metrics(self, sampled: int, not_sampled: int, dropped: int, now: float) -> None:
        """Counters (and the status page's minute row) once per call, not per trace."""
        m = self._metrics
        minute = int(now // 60)
        history = self._history
        if not history or history[-1][0] != minute:
            history.append((minute, {}, [0, 0, 0]))
        _, by_policy, totals = history[-1]
        totals[0] += sampled
        totals[1] += not_sampled
        totals[2] += dropped
        for count, labels in ((sampled, _LABELS[_SAMPLED]), (not_sampled, _LABELS[_NOT_SAMPLED]),
                              (dropped, _LABELS[_DROPPED])):
            if count:
                m.global_sampled.labels(*labels).inc(count)
        for slot in self._slots:
            for vote, vote_labels in _LABELS.items():
                n_traces = slot.traces[vote]
                if n_traces:
                    row = by_policy.get(slot.label)
                    if row is None:
                        row = by_policy[slot.label] = [0, 0, 0]
                    row[_COLUMN[vote]] += n_traces
                    m.traces_sampled.labels(slot.label, *vote_labels).inc(n_traces)
                    m.spans_sampled.labels(slot.label, *vote_labels).inc(slot.spans[vote])
                    slot.traces[vote] = slot.spans[vote] = 0

    def status(self, limit: int = 50) -> dict[str, Any]:
        """For the status page: traces kept, not kept and dropped per policy vote and in all, over the last 5
        minutes and the last hour (from the per-minute rows; the current minute counts in both)."""
        minute = int(self._clock() // 60)
        windows = {"5m": 5, "1h": 60}
        policies: dict[str, dict[str, list[int]]] = {
            s.label: {w: [0, 0, 0] for w in windows} for s in self._slots}
        totals = {w: [0, 0, 0] for w in windows}
        for at, by_policy, row in self._history:
            for w, width in windows.items():
                if minute - at >= width:
                    continue
                for i in range(3):
                    totals[w][i] += row[i]
                for label, counts in by_policy.items():
                    target = policies.setdefault(label, {x: [0, 0, 0] for x in windows})[w]
                    for i in range(3):
                        target[i] += counts[i]

        def named(counts: list[int]) -> dict[str, int]:
            return {"sampled": counts[0], "not_sampled": counts[1], "dropped": counts[2]}

        return {
            "panel": "sampling",
            "policies": [{"policy": label, **{w: named(c) for w, c in by_window.items()}}
                         for label, by_window in list(policies.items())[:limit]],
            "decisions": {w: named(c) for w, c in totals.items()},
        }

    async def start(self, host: Host) -> None:
        self._host = host
        if host is not None:
            members = _group_members(host)
            for slot in self._slots:
                for p in walk(slot.policy):
                    if isinstance(p, EmaThroughput) and p.cfg.use_cluster_size:
                        p.cluster_size = members
        cfg = self.config
        debug = bool(getattr(host, "debug", False))
        if cfg.recent_decisions > 0 and not (debug or cfg.record_policy or cfg.dry_run or self._track):
            # Nothing reads the ring: no lookup (service.telemetry.debug is off), and late spans need no policy
            # or probability from it. Recording costs about a microsecond per trace: skipped.
            self.ring = DecisionRing(0)
            self._metrics.ring_capacity.set(0)
        if cfg.recent_decisions > 0 and debug and ROUTE not in host.routes:
            # One route (and the status page's trace lookup) for every tail_sampling stage of the service: the
            # first to start serves it.
            lookup = _lookup_all(host)
            host.add_route(ROUTE, handler(lookup), debug=True)
            if host.trace_lookup is None:
                host.trace_lookup = _Lookup(lookup)

    async def shutdown(self) -> None:
        return None


def _group_members(host: Host) -> Callable[[], int]:
    """The members of the service's Kafka consumer group (the sampling tier's), read when asked: the
    receivers join after the processors start, and the group changes with every rebalance. With several
    groups, the largest; 1 before any assignment."""

    def members() -> int:
        sizes = [n for counts in host.consumer_groups.values() for count in counts if (n := count()) is not None]
        return max(sizes, default=1)

    return members


class _Lookup:
    """The service's trace lookup (:class:`collector.component.TraceLookup`) for the status page."""

    __slots__ = ("lookup",)

    def __init__(self, lookup: Callable[[bytes], dict[str, Any] | None]) -> None:
        self.lookup = lookup


def _lookup_all(host: Host) -> Callable[[bytes], dict[str, Any] | None]:
    """A lookup over every tail_sampling stage the service built (in pipeline order)."""

    def lookup(trace_id: bytes) -> dict[str, Any] | None:
        seen: set[int] = set()
        for procs in host.pipeline_processors.values():
            for proc in procs.values():
                if isinstance(proc, TailSamplingProcessor) and id(proc) not in seen:
                    seen.add(id(proc))
                    found = proc.lookup(trace_id)
                    if found is not None:
                        return found
        return None

    return lookup
