"""The vectorized walk: a split of an OTLP trace request by trace id with array operations (numpy), for
large requests when the compiled walk is not loaded.

Spans in canonical encoding start with ``0x12 <length> 0x0a 0x10 <trace id> 0x12 0x08 <span id>``. The
walk finds every such header at once with array operations, then proves that the headers found tile each
``ScopeSpans`` exactly (each span ends where the next begins, from the scope's first span to its last).
That proof makes the result exact: a header-like byte pattern inside a span (an attribute value, a link)
would break the tiling. The fields after each span's header are then stepped through, one field of every
span at a time, so that no span repeats an id field further on (protobuf keeps the last one; the header
holds the first). Anything the fast path does not cover (three-byte span lengths, non-empty trace
state, non-canonical field order, tiling that does not hold) returns ``None`` and the caller walks the
request span by span in Python instead. Per-span work here is array arithmetic on one-dimensional
gathers (bytes, and 8-byte words at any offset, for ids and times); Python runs once per *run*
(consecutive spans of one trace within a scope).
"""

from __future__ import annotations

import numpy as np

from collector.wire._errors import InvalidSpanIds, WireError
from collector.wire._records import ScopeChunk, TraceSpans
from collector.wire._spans import error_key_may_be_true, status_error_at
from collector.wire._varint import iter_fields

_PAD_AFTER = 128  # bytes after a span's body start that the gathers may read
_PAD = bytes(_PAD_AFTER)
_NONE = np.zeros(0, dtype=np.int64)
# ``ndarray.any()`` / ``.all()`` / ``np.flatnonzero`` go through Python-level wrappers (about 1 µs a call,
# several calls a request); count_nonzero and ``.nonzero()`` are single C calls.
_count = np.count_nonzero


def split_np(data: bytes, scopes: list[tuple[bytes, bytes, int, int]], hints: bool,
             keys: bool, ids_once: bool = False) -> list[ScopeChunk] | None:
    """``scopes``: (resource fields, scope fields, first span field, end of spans) of every ScopeSpans,
    in order, as the container walk found them (the span region may still end in scope fields).
    ``hints``: work out ``maybe_error`` (else it is True for every trace); ``keys``: an ``error`` attribute
    counts too; ``ids_once``: the caller knows that no span repeats an id field (the steps through the
    rest of each span are skipped). Returns the chunks, or None when the fast path does not apply (the
    caller then walks in Python). Raises :class:`~collector.wire.InvalidSpanIds` for an invalid id."""
    n = len(data)
    arr = np.frombuffer(data, dtype=np.uint8)
    # Span bodies start with 0x0a 0x10 (trace_id, 16 bytes): find the 0x10 bytes (one pass over the
    # request, and one to list them), then keep those after 0x0a with a span field header before them.
    q = (arr[3:n] == 0x10).nonzero()[0] + 2
    if q.size == 0:
        return None
    # Gathers read a few bytes past each span header (and ``words`` 8 bytes at any offset): near the end of
    # the request they come from a padded copy.
    if int(q[-1]) + _PAD_AFTER > n:
        arr = np.frombuffer(data + _PAD, dtype=np.uint8)
    # Three bytes before the body: the field header (0x12 and a one- or two-byte length); the body starts
    # 0a 10 <trace id, 16 bytes> 12 08 <span id, 8 bytes>. One 8-byte word from the header's first possible
    # byte is checked against both header forms at once (bytes: -3 -2 -1 0a 10; a mask bit 0x80 keeps only
    # a length byte's continuation bit).
    words = _words(arr)
    h = words[q - 3]
    one = (h & 0xFFFF80FF00) == 0x100A001200  # 12 <length < 128> 0a 10
    ok = (one | ((h & 0xFFFF8080FF) == 0x100A008012)) & ((words[q + 18] & 0xFFFF) == 0x0812)  # 12 <2 bytes>
    q, one, h = q[ok], one[ok], h[ok]
    if q.size == 0:
        return None
    b1 = ((h >> 16) & 0xFF).astype(np.int64)  # the length's last (or only) byte
    b2 = ((h >> 8) & 0x7F).astype(np.int64)  # its first byte, of a two-byte length
    f = q - 3 + one  # field starts
    e = q + np.where(one, b1, b2 | (b1 << 7))  # span ends
    # Tiling: a span ends where the next begins, except at scope boundaries (checked below).
    breaks = (f[1:] != e[:-1]).nonzero()[0] + 1
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

    # Ids, checked for all zero (below: a later id field may replace them): trace id (two 8-byte words)
    # and span id.
    tid0, tid1, sid = words[q + 2], words[q + 10], words[q + 20]

    # Fields after the span id: [trace_state] [parent] [name] [kind] start end.
    j = q + 28
    c = arr[j]
    if _count(c == 0x1A):
        return None  # a trace state: rare, walked in Python
    has_parent = c == 0x22
    plen = arr[j + 1] * has_parent
    root = plen == 0
    j += has_parent * (plen.astype(np.int64) + 2)  # the name's tag, or flags as protobuf.js writes them
    j += ((arr[j] == 0x85) & (arr[j + 1] == 0x01)) * 6
    has_name = arr[j] == 0x2A
    n1 = arr[j + 1].astype(np.int64)
    n2 = arr[j + 2].astype(np.int64)
    if _count(has_name & (n1 >= 0x80) & (n2 >= 0x80)):
        return None  # a name of 16 KiB or more
    j += has_name * np.where(n1 < 0x80, n1 + 2, ((n1 & 0x7F) | (n2 << 7)) + 3)
    if int(j.max()) + _PAD_AFTER > len(arr):  # a long name in the last spans: gathers from a padded copy
        arr = np.frombuffer(data + bytes(int(j.max()) - n + _PAD_AFTER), dtype=np.uint8)
        words = _words(arr)
    has_kind = arr[j] == 0x30  # kind, then 0x39 <start, 8 bytes> 0x41 <end, 8 bytes>
    if _count(has_kind & (arr[j + 1] >= 0x80)):
        return None
    j += has_kind * 2
    has_times = (arr[j] == 0x39) & (arr[j + 9] == 0x41) & (j + 18 <= e)
    t8 = words[j + 1] * has_times
    x8 = words[j + 10] * has_times
    # The ids read above are each span's only ones (protobuf keeps the last of a repeated id field, as a
    # corrupt attribute tag can make one) and the rest of its fields tile it: else the Python walk decides.
    if not ids_once and not _rest_tiles(arr, data, j + has_times * 18, e):
        return None
    if _count(sid) != sid.size or _count(tid0 | tid1) != sid.size:
        raise InvalidSpanIds("traceId or spanId is all zero")
    if _count((plen != 0) & (plen != 8)):
        raise InvalidSpanIds("parentSpanId must be empty or 8 bytes")

    # Runs: consecutive spans of one trace within one segment.
    newrun = np.empty(q.size, dtype=bool)
    newrun[0] = True
    newrun[1:] = (tid0[1:] != tid0[:-1]) | (tid1[1:] != tid1[:-1])
    newrun[breaks] = True
    rs = newrun.nonzero()[0]
    ends = np.empty_like(rs)  # where each run ends (the next one's start)
    ends[:-1] = rs[1:]
    ends[-1] = q.size
    run_f = f[rs]
    run_e = e[ends - 1]
    # Runs that may hold an ERROR status or an ``error`` attribute: an exact "no" for the rest.
    if hints:
        maybe_error = np.logical_or.reduceat(error_status(arr, e), rs)
        status_at = _status_fields(arr, n, data, e)  # a status written anywhere else in its span
        key_at = _error_keys(arr, n, data) if keys else _NONE
        for found in (status_at, key_at):
            if found.size:
                r_of = np.searchsorted(run_f, found, side="right") - 1
                inside = (r_of >= 0) & (found < run_e[np.maximum(r_of, 0)])
                maybe_error[r_of[inside]] = True
    else:
        maybe_error = np.ones(rs.size, dtype=bool)
    counts = (ends - rs).tolist()
    roots = np.logical_or.reduceat(root, rs).tolist()
    lo = np.minimum.reduceat(t8, rs).tolist()
    hi = np.maximum.reduceat(x8, rs).tolist()
    errs = maybe_error.tolist()
    tid_at = (q[rs] + 2).tolist()
    run_f_list = run_f.tolist()
    run_e_list = run_e.tolist()
    run_starts = rs.tolist()

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


def _rest_tiles(arr: np.ndarray, data: bytes, j: np.ndarray, e: np.ndarray) -> bool:
    """Whether, in every span, the fields from ``j`` tile it up to its end ``e`` and none of them is an id
    field (``trace_id``, ``span_id``, ``parent_span_id``: tags 0a, 12, 22). One field of every span a step,
    all spans at once; False too for what the steps do not read (a tag of three or more bytes, a length of
    three or more, a varint of more than ten bytes, a group): the Python walk reads those."""
    if len(arr) < len(data) + 16:  # the steps read up to 12 bytes past a field's start
        arr = np.frombuffer(data + bytes(16), dtype=np.uint8)
    live = j < e
    pos, end = j[live], e[live]
    if _count(j > e):
        return False
    while pos.size:
        tag = arr[pos].astype(np.int64)
        wide = tag >= 0x80
        if _count(wide):  # a two-byte tag (flags, 85 01): its second byte
            t2 = arr[pos + 1].astype(np.int64)
            if _count(wide & (t2 >= 0x80)):
                return False
            tag = np.where(wide, (tag & 0x7F) | (t2 << 7), tag)
        if _count((tag == 0x0A) | (tag == 0x12) | (tag == 0x22)):
            return False
        pos = pos + 1 + wide
        wt = tag & 7
        length = wt == 2
        b1 = arr[pos].astype(np.int64)
        b2 = arr[pos + 1].astype(np.int64)
        if _count(length & (b1 >= 0x80) & (b2 >= 0x80)):
            return False
        size = np.where(b1 < 0x80, b1 + 1, ((b1 & 0x7F) | (b2 << 7)) + 2)
        varint = wt == 0
        if _count(varint):
            more = arr[pos[:, None] + _TEN] >= 0x80  # continuation bits of up to ten bytes
            last = np.argmin(more, axis=1)  # the first byte without one
            if _count(varint & more.all(axis=1)):
                return False
            size = np.where(varint, last + 1, size)
        if _count((wt != 0) & (wt != 1) & (wt != 2) & (wt != 5)):
            return False
        pos = pos + np.where(length | varint, size, np.where(wt == 1, 8, 4))
        if _count(pos > end):
            return False
        live = pos < end
        pos, end = pos[live], end[live]
    return True


_TEN = np.arange(10, dtype=np.int64)


def _words(arr: np.ndarray) -> np.ndarray:
    """``words[i]``: the little-endian 8-byte word at byte ``i`` of ``arr`` (a view, elements overlap)."""
    return np.ndarray(shape=(len(arr) - 7,), dtype="<u8", buffer=arr, strides=(1,))


def error_status(arr: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per span (``ends``: where each ends in ``arr``): whether its status code may be ERROR.

    Encoders write a span's fields in field-number order (or, protobuf.js, in declaration order), and in
    both ``status`` (15) is the last field but for ``flags`` (16, six bytes: ``85 01`` and a fixed32);
    inside ``Status`` the code (3) comes after the message (2). So a span whose status code is ERROR ends
    with ``18 02``, or with ``18 02 85 01 xx xx xx xx``; one that ends otherwise has no ERROR status. A
    span of other bytes ending so is a false "maybe": it is decoded, and read exactly."""
    # Each span's last 8 bytes as one little-endian word (a view whose elements start at every byte).
    t = _words(arr)[ends - 8]
    found: np.ndarray = ((t >> 48) == 0x0218) | ((t & 0xFFFFFFFF) == 0x01850218)
    return found


def _status_fields(arr: np.ndarray, n: int, data: bytes, span_ends: np.ndarray) -> np.ndarray:
    """Positions of the bytes that may be a span's ``status`` field (``7a``, a length, a ``Status``) with
    the code ERROR, wherever its encoder wrote it (:func:`error_status` reads the usual place: the end): a
    ``7a`` whose one-byte-length value begins or ends with ``18 02``; with a longer length, the exact
    reading in Python (:func:`_spans.status_error_at`)."""
    z = (arr[:n - 3] == 0x7A).nonzero()[0]
    if z.size == 0:
        return _NONE
    # The end of the span each 7a is in: a status field ends inside its span.
    within = span_ends[np.minimum(np.searchsorted(span_ends, z, side="right"), span_ends.size - 1)]
    ln = arr[z + 1].astype(np.int64)
    short = ln < 0x80
    c = z + 2
    e = np.minimum(c + ln * short, n)
    ok = short & (e - c >= 2) & (c + ln <= within)
    first = (arr[c] == 0x18) & (arr[c + 1] == 0x02)
    last = (arr[np.maximum(e - 2, 0)] == 0x18) & (arr[np.maximum(e - 1, 0)] == 0x02)
    hit = z[ok & (first | last)]
    longer = ~short
    if _count(longer):
        extra = [p for p, w in zip(z[longer].tolist(), within[longer].tolist(), strict=True)
                 if status_error_at(data, p, w)]
        if extra:
            hit = np.sort(np.concatenate((hit, np.array(extra, dtype=np.int64))))
    out: np.ndarray = hit
    return out


# A whole ``KeyValue`` ``error`` as encoders write it, after its one-byte length (see
# _spans.error_key_may_be_true): 11 bytes with a bool or a one-byte int (12 02 10|18 xx), or 16 bytes with
# the string "false" (12 07 0a 05 false, any case). Such a value is not true.
_BOOL_OR_INT = 0x0212  # 12 02, then 10 00 (false) or 18 <byte below 80>
_FALSE_TEXT = int.from_bytes(b"\x12\x07\x0a\x05fals", "little")
_CASE = int.from_bytes(b"\x00\x00\x00\x00\x20\x20\x20\x20", "little")


def _error_keys(arr: np.ndarray, n: int, data: bytes) -> np.ndarray:
    """Positions of an attribute key ``error`` (``0a 05 65 72 72 6f 72``) in the request whose value may be
    true (``error = false``, ``"false"`` and ``0`` are left out, see :func:`_spans.error_key_may_be_true`)."""
    # Two byte compares and one reduction first: most requests have no "05 65" at all, and listing the
    # positions of a frequent byte (05: every five-byte string) costs four times as much as this.
    m = (arr[1:n - 5] == 0x05) & (arr[2:n - 4] == 0x65)
    if not m.any():
        return _NONE
    c = m.nonzero()[0] + 1
    found: np.ndarray = c[(arr[c - 1] == 0x0A) & (arr[c + 2] == 0x72) & (arr[c + 3] == 0x72)
                          & (arr[c + 4] == 0x6F) & (arr[c + 5] == 0x72)]
    if found.size == 0:
        return found
    # The value after the key (at c + 6): the usual false values are recognised here at once, any other
    # one by the exact reading in Python.
    h = found - 1  # the key's tag
    inside = (h >= 2) & (found + 15 < len(arr))
    h_in = np.where(inside, h, 2)
    size = arr[h_in - 1]
    w = _words(arr)[np.minimum(h_in + 7, len(arr) - 8)]
    tag_ok = arr[h_in - 2] < 0x80
    small = (size == 11) & ((w & 0xFFFF) == _BOOL_OR_INT) & (
        (((w >> 16) & 0xFF) == 0x18) & (((w >> 24) & 0x80) == 0) | (((w >> 16) & 0xFFFF) == 0x0010))
    text = (size == 16) & ((w | _CASE) == _FALSE_TEXT) & ((arr[np.minimum(h_in + 15, len(arr) - 1)] | 0x20) == 0x65)
    plain_false = inside & tag_ok & (small | text)
    if _count(plain_false) == found.size:
        return _NONE
    rest = found[~plain_false]
    keep = [bool(error_key_may_be_true(data, int(k) - 1)) if k - 1 + 7 < n else True for k in rest.tolist()]
    out: np.ndarray = rest[np.array(keep, dtype=bool)]
    return out


def _scope_tail(data: bytes, start: int, end: int) -> bytes | None:
    """The non-span fields after the last span of a ScopeSpans (its schema_url), or None if a span or
    anything unexpected is there."""
    parts = []
    try:
        for tag, fs, _, fe in iter_fields(data, start, end):
            if tag == 0x12:
                return None
            parts.append(data[fs:fe])
    except WireError:
        return None
    return b"".join(parts)
