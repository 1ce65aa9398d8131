"""The pipeline's one trace buffer: assembles spans into whole traces and hands them, at decision time,
to the trace-level stages that follow (``root_cause``, ``alert_routing``, ``tail_sampling``, ...).

* Spans are held as framed wire bytes per trace and origin (see :mod:`collector.model`), never as one
  protobuf object per span. The request is split by trace on the wire (:func:`collector.wire.split_by_trace`).
* A trace is decided ``decision_wait`` after its first span arrived, or ``decision_wait_after_root_received``
  after its root span, whichever is first. The stages run in config order; what the last returns is kept,
  sent on as batches built from the stored bytes, and remembered in the sampled decision cache; the
  rest are remembered as not sampled.
* Late spans (their trace already decided) follow the cached decision. Without a cache, a late span
  starts a new trace, as in the OTel Collector's tail sampling processor. A stage with
  ``process_late(traces, kept)`` sees the late spans the cache releases (``kept``, before they are sent on,
  to mark them) or drops; a stage with ``bind_buffer(buffered)`` is given :meth:`TraceBuffer.buffered_spans`.
* Bounded: at ``num_traces`` pending traces the oldest is decided early (counted), or, with
  ``block_on_overflow``, new traces are refused (retryable, so receivers push back). A trace above
  ``maximum_trace_size_bytes`` is dropped at once and remembered as not sampled. Decided batches wait in
  a bounded outbox; when the next stage refuses them they are retried and new data is refused meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from time import thread_time
from typing import Any

from prometheus_client import Counter

from collector.component import Host, Settings, TraceOutcomeListener, TraceStage
from collector.consumer import Capabilities, TraceBufferSettings, TracesConsumer
from collector.errors import ConsumerError, RefusedError
from collector.model import Origin, SpanBatch, Trace
from collector.telemetry import Telemetry
from collector.validate import remove_invalid_spans
from collector.wire import InvalidSpanIds, ScopeChunk, TraceSpans, WireError, trace_spans

PREFIX = "otelcol_processor_tail_sampling_"
MAX_ORIGINS = 4096
OUTBOX_BATCHES = 64
TICK_MAX = 1.0
CHUNK = 2000  # traces per stage call before yielding to the event loop
BACKOFF_INITIAL, BACKOFF_MAX = 0.05, 5.0


class _DecisionCache:
    """Trace id -> decision time, first in first out, bounded (size 0 = off)."""

    __slots__ = ("items", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: dict[bytes, float] = {}  # read directly on the hot path; change only through add()

    def add(self, trace_id: bytes, at: float) -> None:
        if self.size <= 0:
            return
        items = self.items
        if trace_id not in items and len(items) >= self.size:
            del items[next(iter(items))]
        items[trace_id] = at

    def __len__(self) -> int:
        return len(self.items)


def _file_late(into: dict[bytes, Trace], tid: bytes, origin: Origin, framed: bytes, count: int, ts: TraceSpans,
               now: float) -> None:
    trace = into.get(tid)
    if trace is None:
        into[tid] = Trace(tid, now, now, origin, framed, count, ts.start, ts.end, ts.maybe_error)
    else:
        trace.add(origin, framed, count, ts.start, ts.end, ts.maybe_error)


class _Metrics:
    def __init__(self, settings: Settings, label: str) -> None:
        t = settings.telemetry
        lab = ("processor",)
        self.on_memory = t.gauge(PREFIX + "sampling_traces_on_memory",
                                 "Number of traces currently in the in-memory storage.", lab).labels(label)
        self.new_trace = t.counter(PREFIX + "new_trace_id_received",
                                   "Counts the arrival of new traces.", lab).labels(label)
        self.late_age = t.histogram(PREFIX + "sampling_late_span_age",
                                    "Time (in seconds) from the sampling decision to the arrival of a late span.",
                                    lab, buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)).labels(label)
        self.too_early = t.counter(PREFIX + "sampling_trace_dropped_too_early",
                                   "Count of traces decided before decision_wait because num_traces was reached.",
                                   lab).labels(label)
        self.early_release = t.counter(PREFIX + "early_releases_from_cache_decision",
                                       "Spans released immediately because of a cached sampled decision.",
                                       lab).labels(label)
        self.timer_latency = t.histogram(PREFIX + "sampling_decision_timer_latency",
                                         "Latency (in milliseconds) of each run of the sampling decision timer.",
                                         lab, buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)).labels(label)
        self.timer_lag = t.gauge(PREFIX + "sampling_decision_timer_lag_seconds",
                                 "How late the oldest due trace was decided at the last timer run.", lab).labels(label)
        self.late_dropped = t.counter("tracetriage_trace_buffer_late_spans_dropped",
                                      "Late spans dropped because their trace was decided not sampled.",
                                      lab).labels(label)
        self.too_large = t.counter("tracetriage_trace_buffer_traces_too_large",
                                   "Traces dropped for exceeding maximum_trace_size_bytes.", lab).labels(label)
        self.refused = t.counter("otelcol_processor_refused_spans",
                                 "Number of spans that were rejected by the processor.", lab).labels(label)
        self.malformed = t.counter("tracetriage_trace_buffer_malformed_batches",
                                   "Batches whose wire form could not be split by trace.", lab).labels(label)
        self.spans_on_memory = t.gauge("tracetriage_trace_buffer_spans",
                                       "Spans held in the trace buffer.", lab).labels(label)
        self.outbox = t.gauge("tracetriage_trace_buffer_outbox_batches",
                              "Decided batches waiting for the next stage.", lab).labels(label)
        self.stage_cpu = stage_cpu_counter(t)
        self.stage_errors = t.counter("tracetriage_trace_stage_errors",
                                      "Traces a trace stage raised on (retried one by one); passed on unchanged.",
                                      ("processor",))


def stage_cpu_counter(telemetry: Telemetry) -> Counter:
    """``tracetriage_trace_stage_cpu_seconds_total{processor}``: the CPU time of each trace stage (its
    ``process_traces`` on every round; a stage with background work, such as ``slo``'s evaluation, adds that
    too). Read beside ``otelcol_process_cpu_seconds`` it says what share of the process each stage costs."""
    return telemetry.counter("tracetriage_trace_stage_cpu_seconds",
                             "CPU time spent by each trace stage: deciding rounds of traces, and its own "
                             "background work.", ("processor",))


_CAPABILITIES = Capabilities()  # it reads the batch's bytes; stages change their own decoded copies


class TraceBuffer:
    """Consumer in front of a run of trace-level stages. See the module docstring."""

    status_panel = "buffer"

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    def __init__(self, settings: Settings, buffer: TraceBufferSettings, stages: Sequence[tuple[str, TraceStage]],
                 next_consumer: TracesConsumer, stage_counters: Sequence[tuple[Any, Any]] = ()) -> None:
        if not stages:
            raise ValueError("a trace buffer needs at least one trace stage")
        self.settings = buffer
        self._stages = list(stages)
        self._stage_counters = list(stage_counters)
        self._next = next_consumer
        self._logger = settings.logger
        self._label = str(settings.id)
        self._m = _Metrics(settings, self._label)
        self._stage_cpu = [self._m.stage_cpu.labels(name) for name, _ in self._stages]
        self._pending: dict[bytes, Trace] = {}
        self._arrivals: collections.deque[Trace] = collections.deque()  # arrival order; may hold decided traces
        self._root_due: collections.deque[Trace] = collections.deque()
        self._spans = 0
        self._span_bytes = 0.0  # mean framed bytes per span of recently decided traces (for status())
        # For status(): late spans that followed a cached decision (kept, dropped) and traces decided early
        # because num_traces was reached; the timer's lag at its last run.
        self._late = [0, 0]
        self._overflowed = 0
        self._lag = 0.0
        self._sampled = _DecisionCache(buffer.sampled_cache_size)
        self._not_sampled = _DecisionCache(buffer.non_sampled_cache_size)
        self._origins: dict[tuple[bytes, bytes], Origin] = {}
        self._outbox: collections.deque[SpanBatch] = collections.deque()
        self._outbox_wake = asyncio.Event()
        self._tick_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._host: Host | None = None
        self._listeners: list[TraceOutcomeListener] = []  # the host's list (filled while components start)
        self._closing = False
        self._closed = False
        # Stages that see the late spans the decision cache releases or drops.
        self._late_hooks = [(name, hook) for name, st in self._stages
                            if callable(hook := getattr(st, "process_late", None))]
        for _, st in self._stages:
            bind = getattr(st, "bind_buffer", None)
            if callable(bind):
                bind(self.buffered_spans)
        wait = buffer.decision_wait
        if buffer.decision_wait_after_root_received > 0:
            wait = min(wait, buffer.decision_wait_after_root_received)
        self._tick = min(TICK_MAX, max(0.01, wait / 10))

    # -- introspection ---------------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        """The id of the stage whose settings the buffer takes (its metrics' ``processor`` label)."""
        return self._label

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._stages)

    @property
    def pending_traces(self) -> int:
        return len(self._pending)

    @property
    def pending_spans(self) -> int:
        return self._spans

    def buffered_spans(self, trace_id: bytes) -> int | None:
        """Spans held for a trace not yet decided (None: none pending)."""
        trace = self._pending.get(trace_id)
        return None if trace is None else trace.span_count

    def status(self, limit: int = 0) -> dict[str, Any]:
        """The status page's snapshot: what is held now and the counts kept beside the metrics. ``bytes`` is an
        estimate: the spans held times the mean span size of the traces decided at the last timer run. The
        oldest trace is the first pending one in arrival order (decided ones ahead of it are skipped, at most
        64)."""
        oldest = None
        now = time.monotonic()
        for i, t in enumerate(self._arrivals):
            if i >= 64:
                break
            if self._pending.get(t.trace_id) is t:
                oldest = now - t.arrival
                break
        cfg = self.settings
        return {
            "panel": "buffer", "stages": [name for name, _ in self._stages],
            "traces": len(self._pending), "spans": self._spans, "bytes": round(self._spans * self._span_bytes),
            "num_traces": cfg.num_traces, "decision_wait": cfg.decision_wait,
            "oldest_trace_age": oldest, "decision_timer_lag": self._lag,
            "late_spans_kept": self._late[0], "late_spans_dropped": self._late[1],
            "overflow_decisions": self._overflowed, "outbox_batches": len(self._outbox),
            "sampled_cache": len(self._sampled), "not_sampled_cache": len(self._not_sampled),
        }

    def _held(self) -> int:
        """Spans pending and spans decided but not yet sent on (for the memory limiter, via the host)."""
        return self._spans + sum(b.span_count for b in self._outbox)

    # -- intake ----------------------------------------------------------------------------------------

    async def consume_traces(self, batch: SpanBatch) -> None:
        if self._closing:
            self._m.refused.inc(batch.span_count)
            raise RefusedError(f"{self._label}: shutting down")
        if len(self._outbox) >= OUTBOX_BATCHES:
            self._m.refused.inc(batch.span_count)
            raise RefusedError(f"{self._label}: the next stage is not keeping up ({len(self._outbox)} decided "
                               f"batches waiting)")
        try:
            try:
                chunks = batch.split()
            except InvalidSpanIds:
                chunks = self._without_invalid_spans(batch)
        except (WireError, IndexError) as e:
            self._m.malformed.inc()
            batch.release()
            raise ConsumerError(f"{self._label}: malformed trace data: {e}") from e
        now = time.monotonic()
        cfg = self.settings
        pending = self._pending
        if cfg.block_on_overflow:
            new_ids = {tid for c in chunks for tid in c.by_trace if tid not in pending}
            if len(pending) + len(new_ids) > cfg.num_traces:
                self._m.refused.inc(batch.span_count)
                raise RefusedError(f"{self._label}: num_traces ({cfg.num_traces}) reached (block_on_overflow)")
        acks = batch.acks
        new_traces = 0
        late: list[ScopeChunk] = []
        hooks = self._late_hooks
        late_kept: dict[bytes, Trace] = {}
        late_dropped: dict[bytes, Trace] = {}
        touched: set[bytes] = set()
        overflow: list[Trace] = []
        sampled_cache = self._sampled.items
        not_sampled_cache = self._not_sampled.items
        arrivals = self._arrivals
        decision_at = now + cfg.decision_wait
        root_wait = cfg.decision_wait_after_root_received
        num_traces = cfg.num_traces
        max_bytes = cfg.maximum_trace_size_bytes
        spans_added = 0
        listeners = self._listeners
        for chunk in chunks:
            origin = self._origin(chunk.resource_fields, chunk.scope_fields)
            chunk_bytes = 0
            for tid, ts in chunk.by_trace.items():
                count = ts.count
                trace = pending.get(tid)
                entries = ts.entries
                framed = entries[0] if len(entries) == 1 else b"".join(entries)
                chunk_bytes += len(framed)
                if trace is None:
                    decided = sampled_cache.get(tid)
                    if decided is not None:
                        self._m.late_age.observe(now - decided)
                        self._m.early_release.inc(count)
                        self._late[0] += count
                        if listeners:
                            self._tell_late(origin, count, len(framed), tid, True)
                        if hooks:
                            _file_late(late_kept, tid, origin, framed, count, ts, now)
                        else:
                            late.append(ScopeChunk(origin.resource_fields, origin.scope_fields, {tid: ts}, count))
                        continue
                    decided = not_sampled_cache.get(tid)
                    if decided is not None:
                        self._m.late_age.observe(now - decided)
                        self._m.late_dropped.inc(count)
                        self._late[1] += count
                        if listeners:
                            self._tell_late(origin, count, len(framed), tid, False)
                        if hooks:
                            _file_late(late_dropped, tid, origin, framed, count, ts, now)
                        continue
                    trace = pending[tid] = Trace(tid, now, decision_at, origin, framed, count, ts.start, ts.end,
                                                 ts.maybe_error)
                    arrivals.append(trace)
                    new_traces += 1
                    if len(pending) > num_traces:
                        overflow.append(self._pop_oldest())
                else:
                    trace.add(origin, framed, count, ts.start, ts.end, ts.maybe_error)
                spans_added += count
                if ts.has_root and not trace.root_seen:
                    trace.root_seen = True
                    if root_wait > 0:
                        due = now + root_wait
                        if due < trace.decision_at:
                            trace.decision_at = due
                            self._root_due.append(trace)
                            self._tick_wake.set()
                if acks and tid not in touched:
                    touched.add(tid)
                    for a in acks:
                        a.retain()
                    trace.acks = (trace.acks or []) + list(acks)
                if max_bytes and trace.byte_size > max_bytes:
                    self._spans += spans_added
                    spans_added = 0
                    self._drop_too_large(trace)
            if listeners:
                for listener in listeners:
                    listener.spans_received(origin, chunk.spans, chunk_bytes)
        self._spans += spans_added
        if late:
            out = SpanBatch(split=late, span_count=sum(c.spans for c in late), split_options=batch.split_options)
            out.with_acks_of(batch)
            self._enqueue(out)
        if late_kept or late_dropped:
            self._run_late_hooks(hooks, list(late_kept.values()), list(late_dropped.values()), batch)
        batch.release()
        if new_traces:
            self._m.new_trace.inc(new_traces)
        self._m.on_memory.set(len(pending))
        self._m.spans_on_memory.set(self._spans)
        if overflow:
            self._m.too_early.inc(len(overflow))
            self._overflowed += len(overflow)
            for t in overflow:
                self._spans -= t.span_count
            await self._decide(overflow)

    def _run_late_hooks(self, hooks: list[tuple[str, Any]], kept: list[Trace], dropped: list[Trace],
                        batch: SpanBatch) -> None:
        """Hand late spans to the stages that look at them, then send the released ones on."""
        for name, hook in hooks:
            for traces, released in ((kept, True), (dropped, False)):
                if not traces:
                    continue
                try:
                    hook(traces, released)
                except Exception:  # a stage's failure must not lose released spans
                    self._m.stage_errors.labels(name).inc(len(traces))
                    self._logger.exception("%s: trace stage %s failed on %d late traces; sending them on unmarked",
                                           self._label, name, len(traces))
        if kept:
            out = self._to_batch(kept)
            out.with_acks_of(batch)
            self._enqueue(out)

    def _without_invalid_spans(self, batch: SpanBatch) -> list[ScopeChunk]:
        """Drop spans with invalid ids (data that did not come through a receiver's id check, such as
        Kafka records), count them as refused, and split the rest."""
        check = remove_invalid_spans(batch.mutable_request())
        self._m.refused.inc(check.rejected)
        self._logger.warning("%s: %s", self._label, check.message)
        batch.span_count = check.accepted
        return batch.split()

    def _origin(self, resource_fields: bytes, scope_fields: bytes) -> Origin:
        key = (resource_fields, scope_fields)
        origin = self._origins.get(key)
        if origin is None:
            if len(self._origins) >= MAX_ORIGINS:
                self._origins.clear()
            origin = self._origins[key] = Origin(resource_fields, scope_fields)
        return origin

    def _drop_too_large(self, trace: Trace) -> None:
        if self._pending.pop(trace.trace_id, None) is None:
            return
        self._spans -= trace.span_count
        self._m.too_large.inc()
        self._logger.warning("%s: trace %s dropped: %d bytes exceed maximum_trace_size_bytes %d", self._label,
                             trace.trace_id.hex(), trace.byte_size, self.settings.maximum_trace_size_bytes)
        self._not_sampled.add(trace.trace_id, time.monotonic())
        if self._listeners:
            self._tell_decided([], [trace], self._sizes([trace]))
        trace.release()

    # -- decisions -------------------------------------------------------------------------------------

    def _pop_oldest(self) -> Trace:
        """Remove and return the oldest pending trace (there is one)."""
        arrivals, pending = self._arrivals, self._pending
        while True:
            t = arrivals.popleft()
            if pending.get(t.trace_id) is t:
                del pending[t.trace_id]
                return t

    def _due(self, now: float) -> list[Trace]:
        """Pending traces whose decision time has come (both queues skip traces decided meanwhile)."""
        pending = self._pending
        due: list[Trace] = []
        for queue in (self._root_due, self._arrivals):
            while queue:
                t = queue[0]
                if pending.get(t.trace_id) is not t:
                    queue.popleft()
                    continue
                if t.decision_at > now:
                    break
                queue.popleft()
                del pending[t.trace_id]
                due.append(t)
        return due

    async def _decide(self, traces: list[Trace]) -> None:
        """Run the stages over ``traces`` in chunks; keep and send on what survives."""
        for i in range(0, len(traces), CHUNK):
            part = traces[i:i + CHUNK]
            listeners = self._listeners
            # Spans and bytes as received, before stages change them (only for listeners that count them).
            sizes = self._sizes(part) if any(li.counts_spans for li in listeners) else None
            kept = self._run_stages(part)
            now = time.monotonic()
            kept_ids = {id(t) for t in kept}
            dropped: list[Trace] = []
            for t in part:
                if id(t) in kept_ids:
                    self._sampled.add(t.trace_id, now)
                else:
                    self._not_sampled.add(t.trace_id, now)
                    dropped.append(t)
            if listeners:
                self._tell_decided(kept, dropped, sizes or {})
            for t in dropped:
                t.release()
            if kept:
                self._enqueue(self._to_batch(kept))
            if i + CHUNK < len(traces):
                await asyncio.sleep(0)

    @staticmethod
    def _sizes(traces: list[Trace]) -> dict[int, list[tuple[Origin, int, int]]]:
        """Per trace (by object id): its spans and wire bytes per origin, as they are now."""
        return {id(t): [(o, t.spans_of(o), len(c)) for o, c in t.chunks.items()] for t in traces}

    def _tell_decided(self, kept: list[Trace], dropped: list[Trace],
                      sizes: dict[int, list[tuple[Origin, int, int]]]) -> None:
        """Tell the outcome listeners a round's decisions: spans and bytes per origin and outcome (summed over
        the round), then the trace ids."""
        totals: dict[tuple[Origin, bool], list[int]] = {}
        for traces, outcome in ((kept, True), (dropped, False)) if sizes else ():
            for t in traces:
                for origin, spans, size in sizes.get(id(t), ()):
                    acc = totals.get((origin, outcome))
                    if acc is None:
                        totals[(origin, outcome)] = [spans, size]
                    else:
                        acc[0] += spans
                        acc[1] += size
        kept_ids = [t.trace_id for t in kept]
        dropped_ids = [t.trace_id for t in dropped]
        for listener in self._listeners:
            if listener.counts_spans:
                for (origin, outcome), (spans, size) in totals.items():
                    listener.spans_decided(origin, spans, size, outcome)
            listener.traces_decided(kept_ids, dropped_ids)

    def _tell_late(self, origin: Origin, spans: int, size: int, trace_id: bytes, kept: bool) -> None:
        """A late span followed its trace's cached decision."""
        ids = [trace_id]
        for listener in self._listeners:
            listener.spans_decided(origin, spans, size, kept)
            listener.traces_decided(ids if kept else [], [] if kept else ids)

    def _run_stages(self, traces: list[Trace]) -> list[Trace]:
        cpu = self._stage_cpu
        for idx, (name, stage) in enumerate(self._stages):
            counters = self._stage_counters[idx] if idx < len(self._stage_counters) else None
            if counters is not None:
                counters[0].inc(sum(t.span_count for t in traces))
            t0 = thread_time()
            try:
                traces = stage.process_traces(traces)
            except Exception:  # noqa: BLE001 - a stage's failure must not stop the pipeline
                traces = self._one_by_one(name, stage, traces)
            cpu[idx].inc(thread_time() - t0)
            if counters is not None:
                counters[1].inc(sum(t.span_count for t in traces))
            if not traces:
                break
        return traces

    def _one_by_one(self, name: str, stage: Any, traces: list[Trace]) -> list[Trace]:
        """A stage raised on a round: run it again trace by trace, so one bad trace (a span a later strict
        decode refuses, a stage's bug on an odd shape) costs only itself. The traces it raises on are passed on
        unchanged and counted; the others get the stage as usual. Side effects the stage had on the round
        before it raised (counters, an alert) may repeat for the traces before the bad one."""
        out: list[Trace] = []
        failed = 0
        first: BaseException | None = None
        for t in traces:
            try:
                out.extend(stage.process_traces([t]))
            except Exception as e:  # noqa: BLE001 - logged once per round below
                failed += 1
                first = first or e
                out.append(t)
        if failed:
            self._m.stage_errors.labels(name).inc(failed)
            self._logger.error("%s: trace stage %s failed on %d of %d traces; passing those on unchanged",
                               self._label, name, failed, len(traces), exc_info=first)
        return out

    @staticmethod
    def _to_batch(traces: list[Trace]) -> SpanBatch:
        """A batch of decided traces, kept grouped by origin and trace (so an exporter that sends by trace,
        such as Kafka's, needs no walk); its wire form is built only if a later stage asks for it."""
        groups: dict[Origin, dict[bytes, TraceSpans]] = {}
        acks = []
        count = 0
        for t in traces:
            for origin, entries in t.wire_chunks():
                ts = trace_spans([bytes(entries)], t.spans_of(origin), t.root_seen, t.start, t.end, t.maybe_error)
                by_trace = groups.get(origin)
                if by_trace is None:
                    by_trace = groups[origin] = {}
                by_trace[t.trace_id] = ts
            count += t.span_count
            if t.acks:
                acks.extend(t.acks)
                t.acks = None
        split = [ScopeChunk(o.resource_fields, o.scope_fields, by_trace, sum(ts.count for ts in by_trace.values()))
                 for o, by_trace in groups.items()]
        batch = SpanBatch(split=split, span_count=count)
        if acks:
            batch.acks = acks
        return batch

    def _enqueue(self, batch: SpanBatch) -> None:
        self._outbox.append(batch)
        self._m.outbox.set(len(self._outbox))
        self._outbox_wake.set()

    # -- background tasks ------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while not self._closing:
            self._tick_wake.clear()
            try:
                async with asyncio.timeout(self._tick):
                    await self._tick_wake.wait()
            except TimeoutError:
                pass
            if self._closing:
                return
            started = time.monotonic()
            due = self._due(started)
            if not due:
                continue
            lag = started - min(t.decision_at for t in due[:1] + due[-1:])
            self._lag = max(0.0, lag)
            self._m.timer_lag.set(self._lag)
            for t in due:
                self._spans -= t.span_count
            sample = due[:64]  # the held bytes are estimated from these (no count on the intake path)
            self._span_bytes = sum(t.byte_size for t in sample) / max(1, sum(t.span_count for t in sample))
            await self._decide(due)
            self._m.on_memory.set(len(self._pending))
            self._m.spans_on_memory.set(self._spans)
            self._m.timer_latency.observe((time.monotonic() - started) * 1000)

    async def _sender(self) -> None:
        """Sends decided batches in order; retries retriable refusals (backpressure stays upstream)."""
        while True:
            while not self._outbox:
                if self._closing and self._closed:
                    return
                self._outbox_wake.clear()
                await self._outbox_wake.wait()
            batch = self._outbox[0]
            delay = BACKOFF_INITIAL
            while True:
                try:
                    await self._next.consume_traces(batch)
                    break
                except ConsumerError as err:
                    if not err.retriable:
                        self._logger.error("%s: next stage rejected %d spans permanently: %s", self._label,
                                           batch.span_count, err)
                        batch.release()
                        break
                    wait = min(err.retry_after if err.retry_after is not None else delay, BACKOFF_MAX)
                    await asyncio.sleep(max(wait, 0.0))
                    delay = min(delay * 2, BACKOFF_MAX)
            self._outbox.popleft()
            self._m.outbox.set(len(self._outbox))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            self._logger.error("%s: background task %s failed", self._label, task.get_name(), exc_info=err)
            if self._host is not None:
                self._host.report_fatal_error(err)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        if self._tasks:
            return
        self._host = host
        self._listeners = host.outcome_listeners
        host.add_holder(self._held)
        for name, coro in (("ticker", self._ticker()), ("sender", self._sender())):
            task = asyncio.create_task(coro, name=f"trace-buffer-{name} {self._label}")
            task.add_done_callback(self._task_done)
            self._tasks.append(task)

    async def shutdown(self) -> None:
        """Decide every pending trace now (or drop them with ``drop_pending_traces_on_shutdown``) and send
        what is kept before returning."""
        if self._closed:
            return
        self._closing = True
        self._tick_wake.set()
        try:
            ticker = self._tasks[0] if self._tasks else None
            if ticker is not None:
                await asyncio.wait([ticker])
            remaining = list(self._pending.values())
            self._pending.clear()
            self._root_due.clear()
            self._arrivals.clear()
            self._spans = 0
            if remaining:
                if self.settings.drop_pending_traces_on_shutdown:
                    self._logger.info("%s: dropping %d pending traces at shutdown", self._label, len(remaining))
                    if self._listeners:
                        self._tell_decided([], remaining, self._sizes(remaining))
                    for t in remaining:
                        t.release()
                else:
                    await self._decide(remaining)
            self._closed = True
            self._outbox_wake.set()
            if len(self._tasks) > 1:
                await asyncio.wait([self._tasks[1]])
            elif self._outbox:  # never started: deliver inline
                await self._sender()
        except asyncio.CancelledError:
            lost = sum(b.span_count for b in self._outbox)
            if lost:
                self._logger.error("%s: shutdown cancelled with %d decided spans not sent", self._label, lost)
            raise
        finally:
            self._closed = True
            for task in self._tasks:
                task.cancel()
            self._m.on_memory.set(0)
            self._m.spans_on_memory.set(0)
