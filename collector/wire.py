"""Protobuf wire-format helpers for OTLP trace requests: split by trace without decoding spans, and build
requests from stored span bytes.

An ``ExportTraceServiceRequest`` is ``resource_spans`` entries (field 1); a ``ResourceSpans`` holds
``resource`` (1), ``scope_spans`` (2), ``schema_url`` (3); a ``ScopeSpans`` holds ``scope`` (1),
``spans`` (2), ``schema_url`` (3); a ``Span`` starts with ``trace_id`` (1), ``span_id`` (2),
``trace_state`` (3), ``parent_span_id`` (4) in canonical encoding. Spans that are not canonically
encoded are decoded with protobuf instead (correct, only slower).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from opentelemetry.proto.trace.v1.trace_pb2 import Span

_TIMES = struct.Struct("<QxQ").unpack_from  # start (fixed64), the end field's tag, end (fixed64)


class WireError(ValueError):
    """Bytes that are not a well-formed OTLP trace request."""


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """Decode a varint at ``i``; returns (value, next index)."""
    b = data[i]
    if b < 0x80:
        return b, i + 1
    result = b & 0x7F
    shift = 7
    i += 1
    while True:
        if i >= len(data) or shift > 63:
            raise WireError("truncated or oversized varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame(tag: int, payload: bytes | bytearray) -> bytes:
    """One length-delimited field: tag byte, varint length, payload."""
    return bytes((tag,)) + encode_varint(len(payload)) + payload


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(tag, field start, payload start, payload end) of each field in data[start:end]."""
    i = start
    while i < end:
        field_start = i
        tag = data[i]
        i += 1
        if tag & 0x80:
            raise WireError("unexpected multi-byte tag in an OTLP container")
        wire_type = tag & 7
        if wire_type == 2:
            ln, i = read_varint(data, i)
            if i + ln > end:
                raise WireError("length-delimited field runs past its container")
            yield tag, field_start, i, i + ln
            i += ln
        elif wire_type == 0:
            _, j = read_varint(data, i)
            yield tag, field_start, i, j
            i = j
        elif wire_type == 5:
            yield tag, field_start, i, i + 4
            i += 4
        elif wire_type == 1:
            yield tag, field_start, i, i + 8
            i += 8
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    if i != end:
        raise WireError("field runs past its container")


class TraceSpans:
    """The framed span entries of one trace within one ``ScopeSpans``, with the earliest start and latest
    end time among them (a span without times counts as 0)."""

    __slots__ = ("count", "end", "entries", "has_root", "start")

    def __init__(self, start: int, end: int) -> None:
        self.entries: list[bytes] = []
        self.count = 0
        self.has_root = False
        self.start = start
        self.end = end


class ScopeChunk:
    """The spans of one ``ScopeSpans`` grouped by trace id."""

    __slots__ = ("by_trace", "resource_fields", "scope_fields")

    def __init__(self, resource_fields: bytes, scope_fields: bytes, by_trace: dict[bytes, TraceSpans]) -> None:
        self.resource_fields = resource_fields
        self.scope_fields = scope_fields
        self.by_trace = by_trace


def split_by_trace(data: bytes) -> list[ScopeChunk]:
    """Walk a serialized ``ExportTraceServiceRequest`` and group its framed span entries by trace id,
    per resource and scope. Touches each span's first few bytes only."""
    chunks: list[ScopeChunk] = []
    n = len(data)
    for tag, _, rs_start, rs_end in _fields(data, 0, n):
        if tag != 0x0A:
            continue
        resource_parts: list[bytes] = []
        scope_ranges: list[tuple[int, int]] = []
        for t2, f2, s2, e2 in _fields(data, rs_start, rs_end):
            if t2 == 0x12:
                scope_ranges.append((s2, e2))
            else:
                resource_parts.append(data[f2:e2])
        resource_fields = b"".join(resource_parts)
        for ss_start, ss_end in scope_ranges:
            chunk = _split_scope(data, ss_start, ss_end, resource_fields)
            if chunk.by_trace:
                chunks.append(chunk)
    return chunks


def _split_scope(data: bytes, start: int, end: int, resource_fields: bytes) -> ScopeChunk:
    scope_parts: list[bytes] = []
    by_trace: dict[bytes, TraceSpans] = {}
    times = _TIMES
    # Spans of one trace often stand next to each other: such a run is sliced once, and a span is
    # recognised as continuing it by comparing its trace id in place.
    entry: TraceSpans | None = None
    tid = b""
    run_start = run_end = 0
    i = start
    while i < end:
        field_start = i
        tag = data[i]
        if tag & 7 != 2 or tag & 0x80:
            raise WireError("unexpected field in ScopeSpans")
        # Inline varint fast path: span lengths below 16 KiB take one or two bytes.
        b = data[i + 1]
        if b < 0x80:
            ln = b
            i += 2
        else:
            b2 = data[i + 2]
            if b2 < 0x80:
                ln = (b & 0x7F) | (b2 << 7)
                i += 3
            else:
                ln, i = read_varint(data, i + 1)
        e = i + ln
        if e > end:
            raise WireError("span runs past its ScopeSpans")
        if tag != 0x12:
            scope_parts.append(data[field_start:e])
            i = e
            continue
        # Canonical span: 0x0a 0x10 <16-byte trace id> 0x12 0x08 <8-byte span id> [0x1a trace_state]
        # [0x22 0x08 parent] [0x2a name] [0x30 kind] [0x39 start fixed64] [0x41 end fixed64] ...
        start_ns = stop_ns = 0
        if ln >= 28 and data[i] == 0x0A and data[i + 1] == 0x10 and data[i + 18] == 0x12 and data[i + 19] == 0x08:
            same = entry is not None and field_start == run_end and data.startswith(tid, i + 2)
            if not same:
                tid = data[i + 2:i + 18]
            j = i + 28
            if j < e and data[j] == 0x1A:
                tl, j = read_varint(data, j + 1)
                j += tl
            is_root = True
            if j < e and data[j] == 0x22:
                is_root = data[j + 1] == 0
                j += 2 + data[j + 1]
            if j < e and data[j] == 0x2A:
                nl = data[j + 1]
                j = (j + 2 + nl) if nl < 0x80 else sum(read_varint(data, j + 1))
            if j < e and data[j] == 0x30:
                j += 2 if data[j + 1] < 0x80 else 3
            if j + 18 <= e and data[j] == 0x39 and data[j + 9] == 0x41:
                start_ns, stop_ns = times(data, j + 1)
        else:
            span = Span.FromString(data[i:e])
            same = False
            tid = span.trace_id
            is_root = not span.parent_span_id
            start_ns, stop_ns = span.start_time_unix_nano, span.end_time_unix_nano
        if not same:
            if entry is not None:
                entry.entries.append(data[run_start:run_end])
            entry = by_trace.get(tid)
            if entry is None:
                entry = by_trace[tid] = TraceSpans(start_ns, stop_ns)
            run_start = field_start
        assert entry is not None
        run_end = e
        entry.count += 1
        if is_root:
            entry.has_root = True
        if start_ns < entry.start:
            entry.start = start_ns
        if stop_ns > entry.end:
            entry.end = stop_ns
        i = e
    if entry is not None:
        entry.entries.append(data[run_start:run_end])
    return ScopeChunk(resource_fields, b"".join(scope_parts), by_trace)


def build_request(groups: Iterable[tuple[bytes, bytes, Iterable[bytes | bytearray]]]) -> bytes:
    """Serialize an ``ExportTraceServiceRequest`` from (resource fields, scope fields, framed span entries)
    groups. Groups with the same resource fields share one ``ResourceSpans``."""
    by_resource: dict[bytes, list[bytes]] = {}
    for resource_fields, scope_fields, span_entries in groups:
        ss = scope_fields + b"".join(span_entries)
        by_resource.setdefault(resource_fields, []).append(frame(0x12, ss))
    out = []
    for resource_fields, scopes in by_resource.items():
        out.append(frame(0x0A, resource_fields + b"".join(scopes)))
    return b"".join(out)
