"""The latency walk (docs/design.md, "The latency walk (critical path)"): where a slow request's time went.

**Critical path** of a span P (CRISP's last-finishing-child rule): the cursor starts at P's end. Among P's
children not yet taken that end at or before the cursor, take the one that ends last (ties: the one that
started later, then the lower span id in byte order); its own critical path is part of P's; the cursor
moves to that child's start; repeat until no child qualifies. The parts of P's interval no taken child
covers are P's **exclusive (self) time** on the path, so the self times along a signal's critical path add
up to the signal's duration. A child that starts before its parent or ends after it (clock skew) is
clipped to the parent's interval first (and its own children to the clipped interval); a child wholly
outside (it ends before the parent starts, or starts after the parent ends) is ignored. A span whose end
is before its start lasts zero.

**Blame**: the span on the signal's critical path with the largest exclusive time (ties: deeper first,
then the earlier start, then the lower span id). A blamed CLIENT span with no SERVER span below it blames
its callee exactly as the error walk does (``peer.service``, else ``server.address``, else ``db.system``).

**Bounds**: the walk is iterative (an explicit stack) and takes each span at most once, so cycles (a span
is never taken twice), orphans (roots), duplicate span ids (one span, as in the error walk) and
100,000-deep chains neither hang nor overflow. ``RootCause.path`` (signal down to the blamed span) is
shortened as the error walk's; ``Failure.critical_path`` keeps the ``max_path_length`` spans with the most
self time, in path order (``critical_path_length`` counts them all).

Entry points:

* :func:`find_slow`: what the ``root_cause`` stage runs on a trace whose span interval exceeds a
  threshold: every signal span slower than its signal's ``latency_threshold`` (strictly longer) and not
  in error gets a ``Failure`` with ``kind="latency"`` (a failing signal keeps the error walk's result).
* :func:`latency_cause` (public, for other stages such as an SLO stage): ``latency_cause(trace, span_id,
  threshold_ms=0.0, *, signal="root", max_path_length=64) -> Failure | None`` explains why the span with
  ``span_id`` took as long as it did, whether or not ``root_cause`` has a threshold, and whether or not the
  span is in error (that policy is the caller's). ``None`` when the trace has no such span, or when
  ``threshold_ms`` > 0 and the span is not longer than it. It only reads the trace (nothing is annotated)
  and costs one index of the trace (about 2 µs a span from the wire) plus the walk; call it per signal
  span, not per span.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace
from pipelines.root_cause.annotate import PREFIX as ANNOTATION_PREFIX
from pipelines.root_cause.model import LATENCY, Failure, PathStep, RootCause
from pipelines.root_cause.span_index import SpanIndex
from pipelines.root_cause.walk import (
    DEFAULT_SIGNAL,
    KIND_CLIENT,
    NO_FAILURES,
    SignalMatcher,
    WalkResult,
    _callee,
    in_error,
)

MS = 1_000_000
_NONE: list[int] = []
_ANNOTATION_BYTES = ANNOTATION_PREFIX.encode()

# One span on a critical path: (node, depth below the signal, exclusive time ns, effective start ns).
Step = tuple[int, int, int, int]


def critical_path(index: SpanIndex, signal: int) -> list[Step]:
    """The critical path of node ``signal``, in time order (pre-order: a span, then the parts of the path
    below it, earliest first). Sets ``index.pred`` and ``index.depth`` of the spans on it."""
    starts, ends, ids, children = index.starts, index.ends, index.ids, index.children
    pred, depth = index.pred, index.depth
    taken = {signal}
    pred[signal] = -1
    depth[signal] = 0
    out: list[Step] = []  # post-order, latest child first: reversed at the end

    def order(node: int, lo: int, hi: int) -> list[int]:
        """``node``'s children, latest (clipped) end first, ties: later (clipped) start, then lower id. (A
        single child's list is the index's own: nothing is allocated along a chain.)"""
        kids = children.get(node, _NONE)
        if len(kids) < 2:
            return kids
        return sorted(kids, key=lambda c: (-(ends[c] if ends[c] < hi else hi), -(starts[c] if starts[c] > lo else lo),
                                           ids[c]))

    # The stack, one list per field: node, its depth, its (clipped) interval, its children in order, the
    # next of them to look at, the cursor, and its exclusive time so far.
    lo, hi = starts[signal], ends[signal]
    nodes, depths, lows, highs = [signal], [0], [lo], [hi]
    kids_st, pos_st, cursors, owns = [order(signal, lo, hi)], [0], [hi], [0]
    while nodes:
        kids = kids_st[-1]
        pos, cursor, lo, hi = pos_st[-1], cursors[-1], lows[-1], highs[-1]
        nk = len(kids)
        child = -1
        c_lo = c_hi = 0
        while pos < nk:
            c = kids[pos]
            pos += 1
            c_lo, c_hi = starts[c], ends[c]
            if c_hi < lo or c_lo > hi:
                continue  # wholly outside the parent: ignored
            if c_hi > hi:
                c_hi = hi  # clock skew: clipped to the parent
            if c_hi <= cursor and c not in taken:
                child = c
                if c_lo < lo:
                    c_lo = lo
                break
        if child < 0:
            out.append((nodes.pop(), depths.pop(), owns.pop() + cursor - lo, lo))
            lows.pop()
            highs.pop()
            kids_st.pop()
            pos_st.pop()
            cursors.pop()
            continue
        pos_st[-1] = pos
        cursors[-1] = c_lo
        owns[-1] += cursor - c_hi
        taken.add(child)
        d = depths[-1] + 1
        pred[child] = nodes[-1]
        depth[child] = d
        nodes.append(child)
        depths.append(d)
        lows.append(c_lo)
        highs.append(c_hi)
        kids_st.append(order(child, c_lo, c_hi))
        pos_st.append(0)
        cursors.append(c_hi)
        owns.append(0)
    out.reverse()
    return out


def blame(index: SpanIndex, path: Sequence[Step]) -> Step:
    """The step with the largest exclusive time (ties: deeper first, then earlier start, then lower id)."""
    ids = index.ids
    return min(path, key=lambda s: (-s[2], -s[1], s[3], ids[s[0]]))


def explain(index: SpanIndex, signal_node: int, signal: str, threshold_ns: int) -> Failure:
    """The latency ``Failure`` of node ``signal_node``: its critical path and the blamed span."""
    path = critical_path(index, signal_node)
    node, d, own, _ = blame(index, path)
    s = index.span(node)
    service = span_service = index.service(node)
    blamed = False
    if s.kind == KIND_CLIENT and not index.has_server_child(node):
        callee = _callee(s)
        if callee:
            service, blamed = callee, True
    cause = RootCause(
        service=service,
        span_name=s.name,
        span_id=s.span_id,
        depth=d,
        path=index._path(signal_node, node, d + 1),
        end_time_unix_nano=s.end_time_unix_nano,
        span_service=span_service,
        blamed_callee=blamed,
        resource_attributes=index._resource(index.group[node]),
        self_time_ms=own / MS,
    )
    steps = path
    if len(path) > index.max_path:  # the spans with the most self time, in path order
        ids = index.ids
        keep = heapq.nsmallest(index.max_path, range(len(path)),
                               key=lambda i: (-path[i][2], -path[i][1], path[i][3], ids[path[i][0]]))
        steps = [path[i] for i in sorted(keep)]
    sig = index.span(signal_node)
    return Failure(
        signal=signal,
        signal_service=index.service(signal_node),
        signal_span_name=sig.name,
        signal_span_id=sig.span_id,
        trace_id=index.trace.trace_id,
        primary=cause,
        root_causes=(cause,),
        root_cause_count=1,
        kind=LATENCY,
        duration_ms=(index.ends[signal_node] - index.starts[signal_node]) / MS,
        threshold_ms=threshold_ns / MS,
        critical_path=tuple(PathStep(index._label(n), t / MS) for n, _, t, _ in steps),
        critical_path_length=len(path),
    )


def find_slow(
    trace: Trace,
    signals: Sequence[tuple[SignalMatcher, int]] = (),
    root_threshold_ns: int = 0,
    *,
    max_path: int = 64,
    max_signals: int = 100,
) -> WalkResult:
    """Every signal span of ``trace`` longer than its threshold and not in error, explained.

    ``signals``: (matcher, threshold ns) in config order; a span belongs to the first signal it matches,
    and a threshold of 0 means that signal has no latency walk. Empty: every root span is a signal
    (``"root"``) with ``root_threshold_ns``. The result works as the error walk's: annotate
    ``signal_spans[i]`` with ``failures[i].primary``, then call :func:`pipelines.root_cause.walk.write_back`."""
    positive = [t for _, t in signals if t > 0] if signals else [t for t in (root_threshold_ns,) if t > 0]
    # No span lasts longer than the trace's spans span (earliest start to latest end, kept by the buffer).
    if not positive or trace.end - trace.start <= min(positive):
        return NO_FAILURES
    index = SpanIndex(trace, max_path)
    index.build()
    starts, ends = index.starts, index.ends
    candidates: list[tuple[int, str, int]] = []  # (node, signal name, threshold ns)
    if not signals:
        parents = index.parents
        candidates = [(n, DEFAULT_SIGNAL, root_threshold_ns) for n in range(len(index))
                      if parents[n] < 0 and ends[n] - starts[n] > root_threshold_ns]
    else:
        shortest = min(positive)
        by_group: dict[int, list[tuple[SignalMatcher, int]]] = {}
        for n in range(len(index)):
            duration = ends[n] - starts[n]
            if duration <= shortest:
                continue
            gi = index.group[n]
            matchers = by_group.get(gi)
            if matchers is None:  # the signals whose service can match this span's
                service = index.service(n)
                matchers = by_group[gi] = [(m, t) for m, t in signals if not m.service or m.service == service]
            if not matchers:
                continue
            name = index.name(n)
            service = index.service(n)
            for m, t in matchers:
                if m.matches(service, name):
                    if t > 0 and duration > t:
                        candidates.append((n, m.name, t))
                    break
    if not candidates:
        return NO_FAILURES
    failures: list[Failure] = []
    spans: list[Span] = []
    stale: list[bool] = []
    skipped = 0
    wire = index.chunks is not None
    for node, name, threshold in candidates:
        s = index.span(node)
        if trace.maybe_error and in_error(s):
            continue  # failing and slow: the error walk's result stands
        if len(failures) >= max_signals:
            skipped += 1
            continue
        failures.append(explain(index, node, name, threshold))
        spans.append(s)
        stale.append(not wire or index.raw[node].find(_ANNOTATION_BYTES) >= 0)
        index.signal_nodes.append(node)
    if not failures:
        return WalkResult([], [], skipped)
    return WalkResult(failures, spans, skipped, index, stale)


def latency_cause(
    trace: Trace,
    span_id: bytes,
    threshold_ms: float = 0.0,
    *,
    signal: str = DEFAULT_SIGNAL,
    max_path_length: int = 64,
) -> Failure | None:
    """Why the span ``span_id`` of ``trace`` took as long as it did (see the module docstring)."""
    index = SpanIndex(trace, max_path_length)
    index.build()
    node = index.by_id.get(span_id)
    if node is None:
        return None
    threshold_ns = int(threshold_ms * MS)
    if threshold_ns > 0 and index.ends[node] - index.starts[node] <= threshold_ns:
        return None
    return explain(index, node, signal, threshold_ns)
