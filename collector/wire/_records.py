"""What a split by trace returns: per ``ScopeSpans``, the framed span entries of each trace in it."""

from __future__ import annotations


class TraceSpans:
    """The framed span entries of one trace within one ``ScopeSpans``, with the earliest start and latest
    end time among them (a span without times counts as 0)."""

    __slots__ = ("count", "end", "entries", "has_root", "maybe_error", "start")

    # No __init__ (created in hot loops: a Python-level call per trace costs more than setting the fields).
    entries: list[bytes]
    count: int
    has_root: bool
    start: int
    end: int
    maybe_error: bool  # False: no span among them has an ERROR status or an ``error`` attribute that is true


def trace_spans(entries: list[bytes], count: int, has_root: bool, start: int, end: int,
                maybe_error: bool = True) -> TraceSpans:
    ts = TraceSpans()
    ts.entries = entries
    ts.count = count
    ts.has_root = has_root
    ts.start = start
    ts.end = end
    ts.maybe_error = maybe_error
    return ts


class ScopeChunk:
    """The spans of one ``ScopeSpans`` grouped by trace id; ``spans`` is how many there are."""

    __slots__ = ("by_trace", "resource_fields", "scope_fields", "spans")

    def __init__(self, resource_fields: bytes, scope_fields: bytes, by_trace: dict[bytes, TraceSpans],
                 spans: int) -> None:
        self.resource_fields = resource_fields
        self.scope_fields = scope_fields
        self.by_trace = by_trace
        self.spans = spans


def append_chunk(chunks: list[ScopeChunk], chunk: ScopeChunk) -> None:
    """Append ``chunk``, or merge it into the last chunk when that has the same resource and scope bytes
    (consecutive ``ScopeSpans`` of one scope, as an encoder writing one ScopeSpans a span gives; the spans
    of a trace stay in order)."""
    if chunks:
        last = chunks[-1]
        if last.scope_fields == chunk.scope_fields and last.resource_fields == chunk.resource_fields:
            into = last.by_trace
            for tid, ts in chunk.by_trace.items():
                have = into.get(tid)
                if have is None:
                    into[tid] = ts
                    continue
                have.entries.extend(ts.entries)
                have.count += ts.count
                have.has_root = have.has_root or ts.has_root
                have.start = min(have.start, ts.start)
                have.end = max(have.end, ts.end)
                have.maybe_error = have.maybe_error or ts.maybe_error
            last.spans += chunk.spans
            return
    chunks.append(chunk)
