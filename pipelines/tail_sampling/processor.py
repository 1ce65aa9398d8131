"""The ``tail_sampling`` stage: evaluates every policy for each whole trace the pipeline's trace buffer
hands it, combines the votes as the OTel Collector does and returns the traces to keep.

Combination: drop policies run first and a DROPPED vote ends the evaluation and drops the trace; then an
INVERTED_NOT_SAMPLED vote drops it; then any SAMPLED vote keeps it; then an INVERTED_SAMPLED vote keeps
it when no policy voted NOT_SAMPLED; otherwise it is dropped. With ``sample_on_first_match`` evaluation
stops at the first SAMPLED vote. A policy that fails counts in ``sampling_policy_evaluation_error`` and
does not vote.

The buffer owns timing, the decision cache and memory; this stage only decides. It records the deciding
policy's name (for kept traces; the dropping one otherwise) in ``trace.notes["tail_sampling.policy"]``.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from collector.component import Host, Settings
from collector.consumer import Capabilities, TraceBufferSettings, TracesConsumer
from collector.model import Trace
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.policies import Decision, Policy, PolicyEvaluationError, build

PREFIX = "otelcol_processor_tail_sampling_"
NOTE_POLICY = "tail_sampling.policy"
# Microsecond buckets for sampling_decision_latency (observed once per policy and decision round, with the
# mean time per trace).
LATENCY_BUCKETS_US = (1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000, 3000, 4000,
                      5000, 10000, 20000, 30000, 50000)

_SAMPLED, _NOT_SAMPLED, _DROPPED = Decision.SAMPLED, Decision.NOT_SAMPLED, Decision.DROPPED
_INV_SAMPLED, _INV_NOT_SAMPLED = Decision.INVERTED_SAMPLED, Decision.INVERTED_NOT_SAMPLED
_ERROR = Decision.ERROR
_UNDECIDED = (Decision.NOT_SAMPLED, "")
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

    __slots__ = ("errors", "global_sampled", "latency", "spans_sampled", "traces_sampled")

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


class TailSamplingProcessor:
    """See the module docstring. ``clock`` gives the ``now`` handed to policies (monotonic seconds)."""

    status_panel = "sampling"

    __slots__ = ("_clock", "_first_match", "_history", "_metrics", "_next", "_slots", "buffer_settings", "config",
                 "id")

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
        for trace, (decision, policy) in zip(traces, self._decide_all(traces, now), strict=True):
            trace.notes[NOTE_POLICY] = policy
            if decision is _SAMPLED:
                kept.append(trace)
                sampled += 1
            elif decision is _DROPPED:
                dropped += 1
            else:
                not_sampled += 1
        self._flush_metrics(sampled, not_sampled, dropped, now)
        return kept

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
        return None

    async def shutdown(self) -> None:
        return None
