"""The Python walk of one ``ScopeSpans``: small requests, and what the other walks do not take.

Spans in canonical encoding (``0a 10 <trace id> 12 08 <span id> [1a trace state] [22 08 parent]
[85 01 flags] [2a name] [30 kind] [39 start] [41 end] ...``) are read from their first bytes, once the rest of
their fields are known to hold no other id field; any other span is decoded with protobuf (correct, only
slower).
"""

from __future__ import annotations

import struct

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.wire._errors import InvalidSpanIds, WireError
from collector.wire._records import ScopeChunk, TraceSpans, trace_spans
from collector.wire._spans import error_keys_may_be_true, error_status_in, fields_repeat_an_id
from collector.wire._varint import read_varint

_TIMES = struct.Struct("<QxQ").unpack_from  # start (fixed64), the end field's tag, end (fixed64)
_Z16 = bytes(16)
_Z8 = bytes(8)


def split_scope(data: bytes, start: int, end: int, resource_fields: bytes, hints: bool, keys: bool,
                ids_once: bool = False) -> ScopeChunk:
    """The spans of the ``ScopeSpans`` payload ``data[start:end]`` grouped by trace id. ``hints``: work out
    ``maybe_error`` (else it is True for every trace); ``keys``: an ``error`` attribute counts too;
    ``ids_once``: the caller knows that no span repeats an id field (the rest of a span is not walked)."""
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
        fast = e - k >= 28 and data[k] == 0x0A and data[k + 1] == 0x10 and data[k + 18] == 0x12 and (
            data[k + 19] == 0x08)
        if fast:
            j = k + 28
            if j < e and data[j] == 0x1A:
                tl, j = read_varint(data, j + 1)
                j += tl
            pl = 0
            if j < e and data[j] == 0x22:
                pl = data[j + 1]
                j += 2 + pl
            if j + 1 < e and data[j] == 0x85 and data[j + 1] == 0x01:  # flags as protobuf.js writes them
                j += 6
            if j < e and data[j] == 0x2A:
                nl = data[j + 1]
                j = (j + 2 + nl) if nl < 0x80 else sum(read_varint(data, j + 1))
            if j < e and data[j] == 0x30:
                j += 2 if data[j + 1] < 0x80 else 3
            if j + 18 <= e and data[j] == 0x39 and data[j + 9] == 0x41:
                s_ns, x_ns = times(data, j + 1)
                j += 18
            # The ids read above are the span's only ones (protobuf keeps the last of a repeated id field,
            # as a corrupt attribute tag can make one), and the fields tile the span: else decoded below.
            fast = ids_once or not fields_repeat_an_id(data, j, e)
        if fast:
            t = tid if i == run_end and data.startswith(tid, k + 2) else data[k + 2:k + 18]
            if data.startswith(_Z8, k + 20):
                raise InvalidSpanIds("spanId is all zero")
            if pl and pl != 8:
                raise InvalidSpanIds("parentSpanId must be empty or 8 bytes")
            root = not pl
            # A span with an ERROR status usually ends with 18 02 [85 01 flags]; a run without such a span
            # is searched for a status anywhere (_add_run).
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
                _add_run(by_trace, tid, data[run_start:run_end], r_count, r_root, r_lo, r_hi, r_err, keys)
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
        _add_run(by_trace, tid, data[run_start:run_end], r_count, r_root, r_lo, r_hi, r_err, keys)
        total += r_count
    return ScopeChunk(resource_fields, b"".join(scope_parts), by_trace, total)


def _add_run(by_trace: dict[bytes, TraceSpans], tid: bytes, run: bytes, count: int, root: bool, lo: int,
             hi: int, maybe_error: bool, keys: bool) -> None:
    """File a run of spans of one trace; ``maybe_error``: one of them may have an ERROR status (else the run
    is searched for one, wherever its encoder wrote the status); ``keys``: an ``error`` attribute that may
    be true counts too (``error = false`` does not). With hints off ``maybe_error`` is always True."""
    entry = by_trace.get(tid)
    if not maybe_error and (error_status_in(run) or (keys and error_keys_may_be_true(run))):
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
