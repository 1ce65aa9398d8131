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
