"""Independent checks of generated OTLP: parse, validate structure, and the root-cause walk (docs/design.md) written
again from its text (iterative, so deep or cyclic input cannot overflow or hang)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


@dataclass
class S:
    """A parsed span with its resource's service.name."""

    service: str
    span: Span
    resource: dict[str, object]
    children: list[S] = field(default_factory=list)

    @property
    def attrs(self) -> dict[str, object]:
        return values(self.span.attributes)


def values(kvs: Iterable[KeyValue]) -> dict[str, object]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in kvs}


def parse(payload: bytes) -> dict[bytes, list[S]]:
    """Spans of a request grouped by trace id."""
    req = ExportTraceServiceRequest.FromString(payload)
    out: dict[bytes, list[S]] = {}
    for rs in req.resource_spans:
        res = values(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.setdefault(span.trace_id, []).append(S(str(res["service.name"]), span, res))
    return out


def link(spans: list[S]) -> list[S]:
    """Attach children; return the roots (spans whose parent is absent)."""
    by_id = {s.span.span_id: s for s in spans}
    roots = []
    for s in spans:
        parent = by_id.get(s.span.parent_span_id) if s.span.parent_span_id else None
        if parent is None:
            roots.append(s)
        else:
            parent.children.append(s)
    return roots


def in_error(s: S) -> bool:
    code = s.span.status.code
    if code == Status.STATUS_CODE_ERROR:
        return True
    if code == Status.STATUS_CODE_OK:
        return False
    flag = s.attrs.get("error")
    return flag is True or flag == "true"


def blame(s: S) -> str:
    if s.span.kind == Span.SPAN_KIND_CLIENT and not any(c.span.kind == Span.SPAN_KIND_SERVER for c in s.children):
        a = s.attrs
        for key in ("peer.service", "server.address", "db.system"):
            if a.get(key):
                return str(a[key])
    return s.service


def walk(roots: list[S]) -> list[tuple[str, S, int]]:
    """Root causes (blamed service, span, depth) from every root in error, primary first."""
    found: list[tuple[str, S, int]] = []
    seen: set[int] = set()
    for root in roots:
        if not in_error(root):
            continue
        stack = [(root, 0)]
        while stack:
            s, depth = stack.pop()
            if id(s) in seen:
                continue
            seen.add(id(s))
            failing = [c for c in s.children if in_error(c)]
            if failing:
                stack.extend((c, depth + 1) for c in failing)
            else:
                found.append((blame(s), s, depth))
    found.sort(key=lambda f: (f[1].span.end_time_unix_nano, -f[2], f[1].span.span_id))
    return found
