"""The id check with protobuf: spans with invalid ids are removed, the rest pass on.

A span is rejected when its trace id is not 16 bytes or is all zero, its span id is not 8 bytes or is
all zero, or its parent span id is set but not 8 bytes. Receivers normally check ids during the wire walk
(:func:`collector.wire.split_by_trace`); this is what runs when that walk finds an invalid id (to remove
exactly the offending spans and name them in the partial-success message), when it does not take the
request, and in the trace buffer for data that came through no receiver's check (Kafka records).
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_MAX_REASONS = 5


class IdCheck:
    """Outcome of :func:`remove_invalid_spans`: spans kept and rejected, and why (first few)."""

    __slots__ = ("accepted", "message", "rejected")

    def __init__(self, accepted: int, rejected: int, message: str) -> None:
        self.accepted = accepted
        self.rejected = rejected
        self.message = message


def _span_problem(span: Span) -> str:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16:
        return f"traceId must be 16 bytes, got {len(trace_id)}"
    if trace_id == _ZERO_TRACE_ID:
        return "traceId is all zero"
    if len(span_id) != 8:
        return f"spanId must be 8 bytes, got {len(span_id)}"
    if span_id == _ZERO_SPAN_ID:
        return "spanId is all zero"
    if parent and len(parent) != 8:
        return f"parentSpanId must be empty or 8 bytes, got {len(parent)}"
    return ""


def remove_invalid_spans(request: ExportTraceServiceRequest) -> IdCheck:
    """Check every span's ids; remove the invalid spans (and containers they leave empty) in place."""
    accepted = 0
    dirty: list[tuple[int, int]] = []
    z16, z8 = _ZERO_TRACE_ID, _ZERO_SPAN_ID
    for ri, rs in enumerate(request.resource_spans):
        for si, ss in enumerate(rs.scope_spans):
            spans = ss.spans
            accepted += len(spans)
            for span in spans:
                t = span.trace_id
                s = span.span_id
                if len(t) != 16 or len(s) != 8 or t == z16 or s == z8:
                    dirty.append((ri, si))
                    break
                p = span.parent_span_id
                if p and len(p) != 8:
                    dirty.append((ri, si))
                    break
    if not dirty:
        return IdCheck(accepted, 0, "")
    return _remove(request, dirty, accepted)


def _remove(request: ExportTraceServiceRequest, dirty: list[tuple[int, int]], total: int) -> IdCheck:
    """The slow path: drop the bad spans of the scopes found dirty, then the containers left empty."""
    rejected = 0
    reasons: list[str] = []
    found: list[tuple[int, int, list[int]]] = []
    for ri, si in dirty:
        spans = request.resource_spans[ri].scope_spans[si].spans
        bad = []
        for i, span in enumerate(spans):
            why = _span_problem(span)
            if why:
                bad.append(i)
                if len(reasons) < _MAX_REASONS:
                    reasons.append(f"resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]: {why}")
        found.append((ri, si, bad))
        rejected += len(bad)
    emptied_resources: list[int] = []
    for ri, si, bad in reversed(found):  # reversed: a deletion never shifts an index still to visit
        rs = request.resource_spans[ri]
        spans = rs.scope_spans[si].spans
        for i in reversed(bad):
            del spans[i]
        if not spans:
            del rs.scope_spans[si]
            if not rs.scope_spans:
                emptied_resources.append(ri)
    for ri in emptied_resources:  # already in descending order
        del request.resource_spans[ri]
    more = f" (and {rejected - len(reasons)} more)" if rejected > len(reasons) else ""
    message = f"{rejected} span(s) rejected for invalid ids: " + "; ".join(reasons) + more
    return IdCheck(total - rejected, rejected, message)
