"""Vectorized split of an OTLP trace request by trace id (the fast path of :func:`collector.wire.split_by_trace`).

Spans in canonical encoding start with ``0x12 <length> 0x0a 0x10 <trace id> 0x12 0x08 <span id>``. The
walk finds every such header at once with array operations, then proves that the headers found tile each
``ScopeSpans`` exactly (each span ends where the next begins, from the scope's first span to its last).
That proof makes the result exact: a header-like byte pattern inside a span (an attribute value, a link)
would break the tiling. Anything the fast path does not cover (three-byte span lengths, non-empty trace
state, non-canonical field order, tiling that does not hold) returns ``None`` and the caller walks the
request span by span in Python instead. Per-span work here is array arithmetic; Python runs once per
*run* (consecutive spans of one trace within a scope).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collector.wire import ScopeChunk

_PAD = bytes(64)
_AROUND = np.arange(-3, 20, dtype=np.int64)  # field header, trace id field, span id header
_IDS = np.array([*range(2, 18), *range(20, 28)], dtype=np.int64)  # trace id, span id (after the body start)
_NAME = np.arange(3, dtype=np.int64)
_KIND = np.arange(2, dtype=np.int64)
_TIMES = np.arange(18, dtype=np.int64)
# Below this size a request is walked in Python: the array set-up costs more than it saves.
MIN_BYTES = 8192


def split_np(data: bytes, scopes: list[tuple[bytes, bytes, int, int]]) -> list[ScopeChunk] | None:
    """``scopes``: (resource fields, scope fields, first span field, end of spans) of every ScopeSpans,
    in order, as the container walk found them (the span region may still end in scope fields).
    Returns the chunks, or None when the fast path does not apply (the caller then walks in Python).
    Raises :class:`collector.wire.InvalidSpanIds` for an invalid id."""
    from collector.wire import InvalidSpanIds, ScopeChunk, TraceSpans

    n = len(data)
    # Padded, so that reads a few bytes past a span's end need no bounds checks.
    arr = np.frombuffer(data + _PAD, dtype=np.uint8)
    head = arr[:n - 1]
    # Span bodies start with 0x0a 0x10 (trace_id, 16 bytes).
    q = np.flatnonzero((head == 0x0A) & (arr[1:n] == 0x10))
    q = q[q >= 3]
    if q.size == 0:
        return None
    # Bytes -3..+19 around each candidate: the field header before the body (0x12 with a one- or
    # two-byte length), the trace id, and the span id's header (0x12 0x08).
    h = arr[q[:, None] + _AROUND].astype(np.int64)
    b3, b2, b1 = h[:, 0], h[:, 1], h[:, 2]
    one = (b2 == 0x12) & (b1 < 0x80)
    ok = (one | ((b3 == 0x12) & (b2 >= 0x80) & (b1 < 0x80))) & (h[:, 21] == 0x12) & (h[:, 22] == 0x08)
    if not ok.all():
        q, one, b1, b2 = q[ok], one[ok], b1[ok], b2[ok]
        if q.size == 0:
            return None
    f = q - 3 + one  # field starts
    e = q + np.where(one, b1, (b2 & 0x7F) | (b1 << 7))  # span ends
    # Tiling: a span ends where the next begins, except at scope boundaries (checked below).
    breaks = np.flatnonzero(f[1:] != e[:-1]) + 1
    breaks_list = breaks.tolist()
    seg_starts = [0, *breaks_list]
    seg_ends = [*breaks_list, int(q.size)]
    f_list = f.tolist()
    e_list = e.tolist()
    if e_list[-1] > n:
        return None
    # Match segments to scopes: each scope with spans owns exactly one segment starting at its first span.
    scope_of_seg: list[int] = []
    tail_fields: list[bytes] = []
    si = 0
    for s0, s1 in zip(seg_starts, seg_ends, strict=True):
        start = f_list[s0]
        while si < len(scopes) and scopes[si][2] != start:
            if scopes[si][2] < scopes[si][3]:
                return None  # a scope with span data that no segment covers
            si += 1
        if si == len(scopes):
            return None
        stop = e_list[s1 - 1]
        scope_end = scopes[si][3]
        if stop > scope_end:
            return None
        tail: bytes | None = b""
        if stop < scope_end:
            tail = _scope_tail(data, stop, scope_end)
            if tail is None:
                return None
        scope_of_seg.append(si)
        tail_fields.append(tail or b"")
        si += 1
    for rest in range(si, len(scopes)):
        if scopes[rest][2] < scopes[rest][3]:
            return None

    # Per-span fields after the span id: [trace_state] [parent] [name] [kind] start end.
    j = q + 28
    c = arr[j]
    if (c == 0x1A).any():
        return None  # a trace state: rare, walked in Python
    has_parent = c == 0x22
    plen = np.where(has_parent, arr[j + 1], 0)
    if ((plen != 0) & (plen != 8)).any():
        raise InvalidSpanIds("parentSpanId must be empty or 8 bytes")
    root = plen == 0
    j += np.where(has_parent, plen + 2, 0)
    nm = arr[j[:, None] + _NAME].astype(np.int64)  # tag, first and second length byte
    n1 = nm[:, 1]
    has_name = nm[:, 0] == 0x2A
    if (has_name & (n1 >= 0x80) & (nm[:, 2] >= 0x80)).any():
        return None  # a name of 16 KiB or more
    j += np.where(has_name, np.where(n1 < 0x80, n1 + 2, ((n1 & 0x7F) | (nm[:, 2] << 7)) + 3), 0)
    kd = arr[j[:, None] + _KIND]
    has_kind = kd[:, 0] == 0x30
    if (has_kind & (kd[:, 1] >= 0x80)).any():
        return None
    j += has_kind * 2
    tm = arr[j[:, None] + _TIMES]  # 0x39 <start, 8 bytes> 0x41 <end, 8 bytes>
    has_times = (tm[:, 0] == 0x39) & (tm[:, 9] == 0x41) & (j + 18 <= e)
    t8 = np.ascontiguousarray(tm[:, 1:9]).view("<u8").ravel() * has_times
    x8 = np.ascontiguousarray(tm[:, 10:18]).view("<u8").ravel() * has_times

    # Ids, checked for all zero: trace id (two 8-byte words) and span id.
    ids = arr[q[:, None] + _IDS].view("<u8")  # (spans, 3): trace id high, low, span id
    if not ids[:, 2].all():
        raise InvalidSpanIds("spanId is all zero")
    if not (ids[:, 0] | ids[:, 1]).all():
        raise InvalidSpanIds("traceId is all zero")

    # Runs: consecutive spans of one trace within one segment.
    newrun = np.empty(q.size, dtype=bool)
    newrun[0] = True
    newrun[1:] = (ids[1:, 0] != ids[:-1, 0]) | (ids[1:, 1] != ids[:-1, 1])
    newrun[breaks] = True
    rs = np.flatnonzero(newrun)
    ends = np.append(rs[1:], q.size)
    run_f = f[rs]
    run_e = e[ends - 1]
    # Runs whose bytes may hold an ERROR status (Status.code: 0x18 0x02) or an ``error`` attribute key
    # (0x05 "e"...): an exact "no" for the rest.
    nxt = arr[1:n]
    err_at = np.flatnonzero(((head == 0x18) & (nxt == 0x02)) | ((head == 0x05) & (nxt == 0x65)))
    maybe_error = np.zeros(rs.size, dtype=bool)
    if err_at.size:
        r_of = np.searchsorted(run_f, err_at, side="right") - 1
        inside = (r_of >= 0) & (err_at < run_e[np.maximum(r_of, 0)])
        maybe_error[r_of[inside]] = True
    counts = (ends - rs).tolist()
    roots = np.logical_or.reduceat(root, rs).tolist()
    lo = np.minimum.reduceat(t8, rs).tolist()
    hi = np.maximum.reduceat(x8, rs).tolist()
    errs = maybe_error.tolist()
    tid_at = (q[rs] + 2).tolist()
    run_starts = rs.tolist()
    run_f_list = run_f.tolist()
    run_e_list = run_e.tolist()

    chunks: list[ScopeChunk] = []
    seg = 0
    seg_start = 0
    seg_end = seg_ends[0]
    by_trace: dict[bytes, TraceSpans] = {}
    for r, k in enumerate(run_starts):
        if k >= seg_end:
            while k >= seg_end:
                resource_fields, scope_fields = scopes[scope_of_seg[seg]][:2]
                chunks.append(ScopeChunk(resource_fields, scope_fields + tail_fields[seg], by_trace,
                                         seg_end - seg_start))
                by_trace = {}
                seg += 1
                seg_start, seg_end = seg_end, seg_ends[seg]
        t = tid_at[r]
        tid = data[t:t + 16]
        run = data[run_f_list[r]:run_e_list[r]]
        entry = by_trace.get(tid)
        if entry is None:
            entry = by_trace[tid] = TraceSpans()
            entry.entries = [run]
            entry.count = counts[r]
            entry.has_root = roots[r]
            entry.start = lo[r]
            entry.end = hi[r]
            entry.maybe_error = errs[r]
            continue
        if lo[r] < entry.start:
            entry.start = lo[r]
        if hi[r] > entry.end:
            entry.end = hi[r]
        entry.entries.append(run)
        entry.count += counts[r]
        if roots[r]:
            entry.has_root = True
        if errs[r]:
            entry.maybe_error = True
    resource_fields, scope_fields = scopes[scope_of_seg[seg]][:2]
    chunks.append(ScopeChunk(resource_fields, scope_fields + tail_fields[seg], by_trace, seg_end - seg_start))
    return chunks


def _scope_tail(data: bytes, start: int, end: int) -> bytes | None:
    """The non-span fields after the last span of a ScopeSpans (its schema_url), or None if a span or
    anything unexpected is there."""
    from collector.wire import WireError, _fields

    parts = []
    try:
        for tag, fs, _, fe in _fields(data, start, end):
            if tag == 0x12:
                return None
            parts.append(data[fs:fe])
    except WireError:
        return None
    return b"".join(parts)
