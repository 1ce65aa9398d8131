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
from bisect import bisect_right
from collections.abc import Iterable, Iterator

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector import wire_jit, wire_np
from collector.wire_np import MIN_BYTES, split_np

_TIMES = struct.Struct("<QxQ").unpack_from  # start (fixed64), the end field's tag, end (fixed64)
_SMALL = [bytes((i,)) for i in range(0x80)]  # one-byte varints
_HEADER = struct.Struct("<H16xH").unpack_from  # a span's first tag and length, and its second (after 16 bytes)
_CANONICAL_HEADER = (0x100A, 0x0812)  # 0a 10 <trace id> 12 08 <span id>


class WireError(ValueError):
    """Bytes that are not a well-formed OTLP trace request."""


class InvalidSpanIds(WireError):
    """A span's ids are invalid (trace id or span id all zero or of the wrong length, parent id neither
    empty nor 8 bytes). Receivers then remove the offending spans with protobuf and report them."""


_Z16 = bytes(16)
_Z8 = bytes(8)
# An attribute key "error" (KeyValue.key, length 5) on the wire: a run of spans without it has no ``error``
# attribute. (ERROR statuses are found from each span's last bytes, see wire_np.error_status.)
ERROR_KEY = b"\n\x05error"
# Status.code = ERROR (field 3, varint 2) as every protobuf encoder writes it: a span without these bytes has
# no ERROR status.
ERROR_CODE = b"\x18\x02"


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
    if n < 0x80:
        return _SMALL[n]
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

    __slots__ = ("count", "end", "entries", "has_root", "maybe_error", "start")

    # No __init__ (created in hot loops: a Python-level call per trace costs more than setting the fields).
    entries: list[bytes]
    count: int
    has_root: bool
    start: int
    end: int
    maybe_error: bool  # False: no span among them has an ERROR status or an ``error`` attribute


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


def split_by_trace(data: bytes) -> list[ScopeChunk]:
    """Walk a serialized ``ExportTraceServiceRequest`` and group its framed span entries by trace id,
    per resource and scope, checking every span's ids on the way. Touches each span's first few bytes
    only (with array operations for large requests, see :mod:`collector.wire_np`).

    Raises :class:`WireError` for malformed bytes, :class:`InvalidSpanIds` for a span with invalid ids."""
    scopes: list[tuple[bytes, bytes, int, int, int]] = []
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
            head, first = _scope_head(data, ss_start, ss_end)
            scopes.append((resource_fields, head, first, ss_end, ss_start))
    if wire_jit._kernel is not None:  # the compiled walk, when loaded (wire_jit.load)
        compiled = wire_jit.split_jit(data, [(r, h, f, e) for r, h, f, e, _ in scopes], wire_np.ERROR_HINTS,
                                      wire_np.ERROR_KEY_HINTS)
        if compiled is not None:
            return compiled
    if n >= MIN_BYTES:
        fast = split_np(data, [(r, h, f, e) for r, h, f, e, _ in scopes])
        if fast is not None:
            return fast
    chunks: list[ScopeChunk] = []
    for resource_fields, _, _, ss_end, ss_start in scopes:
        chunk = _split_scope(data, ss_start, ss_end, resource_fields)
        if chunk.by_trace:
            chunks.append(chunk)
    return chunks


def _scope_head(data: bytes, start: int, end: int) -> tuple[bytes, int]:
    """The framed fields of a ``ScopeSpans`` before its first span, and where that span starts."""
    parts: list[bytes] = []
    for tag, field_start, _, field_end in _fields(data, start, end):
        if tag == 0x12:
            return b"".join(parts), field_start
        parts.append(data[field_start:field_end])
    return b"".join(parts), end


def _split_scope(data: bytes, start: int, end: int, resource_fields: bytes) -> ScopeChunk:
    """The Python walk of one ``ScopeSpans`` (small requests, and what the vectorized walk leaves)."""
    scope_parts: list[bytes] = []
    by_trace: dict[bytes, TraceSpans] = {}
    times = _TIMES
    # Spans of one trace often stand next to each other: such a run is sliced once and summarized in
    # locals, and only its end touches the trace's entry.
    tid = b""
    run_start = run_end = -1
    r_count = 0
    r_root = False
    r_lo = r_hi = 0
    r_err = False
    total = 0
    hints = wire_np.ERROR_HINTS
    i = start
    while i < end:
        tag = data[i]
        # Inline varint fast path: span lengths below 16 KiB take one or two bytes.
        b = data[i + 1]
        if b < 0x80:
            k = i + 2
            e = k + b
        else:
            b2 = data[i + 2]
            if b2 < 0x80:
                k = i + 3
                e = k + ((b & 0x7F) | (b2 << 7))
            else:
                ln, k = read_varint(data, i + 1)
                e = k + ln
        if e > end:
            raise WireError("span runs past its ScopeSpans")
        if tag != 0x12:
            if tag & 7 != 2 or tag & 0x80:
                raise WireError("unexpected field in ScopeSpans")
            scope_parts.append(data[i:e])
            i = e
            continue
        # Canonical span: 0x0a 0x10 <16-byte trace id> 0x12 0x08 <8-byte span id> [0x1a trace_state]
        # [0x22 0x08 parent] [0x2a name] [0x30 kind] [0x39 start fixed64] [0x41 end fixed64] ...
        s_ns = x_ns = 0
        if e - k >= 28 and data[k] == 0x0A and data[k + 1] == 0x10 and data[k + 18] == 0x12 and data[k + 19] == 0x08:
            t = tid if i == run_end and data.startswith(tid, k + 2) else data[k + 2:k + 18]
            if data.startswith(_Z8, k + 20):
                raise InvalidSpanIds("spanId is all zero")
            j = k + 28
            if j < e and data[j] == 0x1A:
                tl, j = read_varint(data, j + 1)
                j += tl
            root = True
            if j < e and data[j] == 0x22:
                pl = data[j + 1]
                if pl:
                    if pl != 8:
                        raise InvalidSpanIds("parentSpanId must be empty or 8 bytes")
                    root = False
                j += 2 + pl
            if j < e and data[j] == 0x2A:
                nl = data[j + 1]
                j = (j + 2 + nl) if nl < 0x80 else sum(read_varint(data, j + 1))
            if j < e and data[j] == 0x30:
                j += 2 if data[j + 1] < 0x80 else 3
            if j + 18 <= e and data[j] == 0x39 and data[j + 9] == 0x41:
                s_ns, x_ns = times(data, j + 1)
            # See wire_np.error_status: a span with an ERROR status ends with 18 02 [85 01 flags].
            err = not hints or (data[e - 2] == 0x18 and data[e - 1] == 0x02) or (
                data[e - 8] == 0x18 and data[e - 7] == 0x02 and data[e - 6] == 0x85 and data[e - 5] == 0x01)
        else:
            span = Span.FromString(data[k:e])
            t = span.trace_id
            if len(t) != 16 or len(span.span_id) != 8 or span.span_id == _Z8 or (
                    span.parent_span_id and len(span.parent_span_id) != 8):
                raise InvalidSpanIds("invalid trace, span or parent span id")
            root = not span.parent_span_id
            s_ns, x_ns = span.start_time_unix_nano, span.end_time_unix_nano
            err = not hints or span.status.code == 2
        if t is tid and i == run_end:
            r_count += 1
            if root:
                r_root = True
            if s_ns < r_lo:
                r_lo = s_ns
            if x_ns > r_hi:
                r_hi = x_ns
            if err:
                r_err = True
        else:
            if r_count:
                _add_run(by_trace, tid, data[run_start:run_end], r_count, r_root, r_lo, r_hi, r_err)
                total += r_count
            if t == _Z16:
                raise InvalidSpanIds("traceId is all zero")
            tid = t
            run_start = i
            r_count = 1
            r_root = root
            r_lo = s_ns
            r_hi = x_ns
            r_err = err
        run_end = i = e
    if r_count:
        _add_run(by_trace, tid, data[run_start:run_end], r_count, r_root, r_lo, r_hi, r_err)
        total += r_count
    return ScopeChunk(resource_fields, b"".join(scope_parts), by_trace, total)


def _add_run(by_trace: dict[bytes, TraceSpans], tid: bytes, run: bytes, count: int, root: bool, lo: int,
             hi: int, maybe_error: bool) -> None:
    """File a run of spans of one trace; ``maybe_error``: one of them may have an ERROR status."""
    entry = by_trace.get(tid)
    if not maybe_error and wire_np.ERROR_KEY_HINTS and ERROR_KEY in run:
        maybe_error = True
    if entry is None:
        by_trace[tid] = trace_spans([run], count, root, lo, hi, maybe_error)
        return
    if maybe_error:
        entry.maybe_error = True
    entry.entries.append(run)
    entry.count += count
    if root:
        entry.has_root = True
    if lo < entry.start:
        entry.start = lo
    if hi > entry.end:
        entry.end = hi


def span_entries(data: bytes, canonical: bool = False) -> list[int] | None:
    """Where each framed span entry (tag ``0x12``, length, span) of a trace chunk starts, then the chunk's
    length. None for a span of 16 KiB or more (a three-byte length) and, with ``canonical``, for a span
    whose header is not ``0a 10 <trace id> 12 08 <span id>``. The chunk must be framed entries only, as
    the trace buffer keeps them."""
    n = len(data)
    at: list[int] = []
    i = 0
    while i < n:
        at.append(i)
        b = data[i + 1]
        if b < 0x80:
            k = i + 2
            e = k + b
        else:
            b2 = data[i + 2]
            if b2 >= 0x80:
                return None
            k = i + 3
            e = k + ((b & 0x7F) | (b2 << 7))
        if canonical and (e - k < 28 or _HEADER(data, k) != _CANONICAL_HEADER):
            return None
        i = e
    at.append(n)
    return at


def entries_containing(data: bytes, at: list[int], needle: bytes) -> Iterator[int]:
    """Indices (into ``at``, from :func:`span_entries`) of the span entries whose bytes contain ``needle``."""
    h = data.find(needle)
    while h >= 0:
        j = bisect_right(at, h) - 1
        yield j
        h = data.find(needle, at[j + 1])


def entry_span(data: bytes, at: list[int], j: int) -> bytes:
    """The span bytes of entry ``j`` (without its tag and length)."""
    i = at[j]
    return data[i + (2 if data[i + 1] < 0x80 else 3):at[j + 1]]


def build_request(groups: Iterable[tuple[bytes, bytes, Iterable[bytes | bytearray]]]) -> bytes:
    """Serialize an ``ExportTraceServiceRequest`` from (resource fields, scope fields, framed span entries)
    groups. Groups with the same resource fields share one ``ResourceSpans``.

    Lengths are summed first and every piece is joined once: each span's bytes are copied once."""
    by_resource: dict[bytes, list[tuple[bytes, list[bytes | bytearray], int]]] = {}
    for resource_fields, scope_fields, span_entries in groups:
        entries = list(span_entries)
        size = len(scope_fields) + sum(map(len, entries))
        scopes = by_resource.get(resource_fields)
        if scopes is None:
            scopes = by_resource[resource_fields] = []
        scopes.append((scope_fields, entries, size))
    out: list[bytes | bytearray] = []
    for resource_fields, scopes in by_resource.items():
        headers = [b"\x12" + encode_varint(size) for _, _, size in scopes]
        rs_size = len(resource_fields) + sum(len(h) + size for h, (_, _, size) in zip(headers, scopes, strict=True))
        out.append(b"\x0a" + encode_varint(rs_size))
        out.append(resource_fields)
        for header, (scope_fields, entries, _) in zip(headers, scopes, strict=True):
            out.append(header)
            out.append(scope_fields)
            out.extend(entries)
    return b"".join(out)
