"""The wire walk compiled with numba: the fast path of :func:`collector.wire.split_by_trace` when numba is
installed (the ``jit`` extra) and ``TRACETRIAGE_JIT`` is not ``0``.

One sequential pass over the spans of a request, in compiled code: every span's top-level fields are read
in whatever order they come (not only the canonical order the vectorized walk in :mod:`collector.wire_np`
relies on), its ids are checked, its times read, and its status code and attribute keys read exactly (an
ERROR status anywhere in the span, not only as its last field). Consecutive spans of one trace within a
``ScopeSpans`` are merged into runs; Python then files one run at a time, as with the other walks.

Anything unusual (a group wire type, a non-span field between spans, a time at or above 2**63) returns
None and the caller takes the other walks, which also raise the precise error for invalid ids. The kernel
reads only inside the bounds it is given and checks every length against them, so malformed bytes cannot
make it read out of range.

Cost (measured on the reference request, 500 spans): about 40 µs for the kernel against about 400 µs for
the vectorized walk. What it costs the process: numba and LLVM, about 90 to 125 MB of resident memory
once compiled. ``TRACETRIAGE_JIT=0`` (or not installing the extra) keeps numba out of the process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collector.wire import ScopeChunk

_log = logging.getLogger(__name__)
ENV = "TRACETRIAGE_JIT"
# Run columns: start of the run's first framed span, end of its last, where its trace id is, span count,
# whether a span has no parent, earliest start, latest end, whether a span may be in error, scope index.
_COLUMNS = 9
_MIN_SPAN = 30  # bytes of the smallest framed span the kernel accepts (tag, length, trace id, span id)

_kernel: Callable[..., int] | None = None
_state = "unloaded"  # unloaded | ready | unavailable
_lock = threading.Lock()


def enabled_by_env() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def load() -> bool:
    """Import numba and compile (or load from numba's cache) the kernel; False when numba is not installed,
    ``TRACETRIAGE_JIT`` is off, or compiling fails (logged once). Safe to call more than once."""
    global _kernel, _state
    if _state != "unloaded":
        return _state == "ready"
    with _lock:
        if _state != "unloaded":
            return _state == "ready"
        if not enabled_by_env():
            _state = "unavailable"
            return False
        try:
            kernel = _compile()
            # Compile now (or load the cached machine code), not on the first large request.
            probe = np.zeros(1, dtype=np.int64).reshape(1, 1)
            # A read-only buffer, as np.frombuffer gives for a request (another type to numba).
            kernel(np.frombuffer(bytes(8), dtype=np.uint8), np.zeros((0, 2), dtype=np.int64), True, True,
                   np.zeros((1, _COLUMNS), dtype=np.int64), probe)
        except ImportError:
            _state = "unavailable"
            return False
        except Exception as e:  # noqa: BLE001 - any compiler failure: the other walks still work
            _log.warning("the compiled wire walk is off: numba failed (%s: %s)", type(e).__name__, e)
            _state = "unavailable"
            return False
        _kernel = kernel
        _state = "ready"
        return True


def available() -> bool:
    """Whether the compiled walk is in use (loads it on first call)."""
    return load()


def split_jit(data: bytes, scopes: list[tuple[bytes, bytes, int, int]], error_hints: bool,
              error_keys: bool) -> list[ScopeChunk] | None:
    """``scopes``: (resource fields, scope fields, first span field, end of the ScopeSpans payload) of every
    ScopeSpans in order, as the container walk found them. The chunks, or None when the compiled walk is
    not loaded or does not take this request (the caller then uses the other walks)."""
    kernel = _kernel
    if kernel is None or not scopes:
        return None
    from collector.wire import TraceSpans

    arr = np.frombuffer(data, dtype=np.uint8)
    bounds = np.array([(s[2], s[3]) for s in scopes], dtype=np.int64)
    runs = np.empty((len(data) // _MIN_SPAN + 1, _COLUMNS), dtype=np.int64)
    tails = np.empty((len(scopes), 1), dtype=np.int64)
    n = kernel(arr, bounds, error_hints, error_keys, runs, tails)
    if n < 0:
        return None
    chunks: list[ScopeChunk] = []
    tail_at = tails[:, 0].tolist()
    scope = -1
    by_trace: dict[bytes, TraceSpans] = {}
    spans = 0
    for f, e, t, count, root, lo, hi, err, si in runs[:n].tolist():
        if si != scope:
            if scope >= 0:
                chunks.append(_chunk(data, scopes[scope], tail_at[scope], by_trace, spans))
                by_trace = {}
                spans = 0
            scope = si
        spans += count
        tid = data[t:t + 16]
        entry = by_trace.get(tid)
        if entry is None:
            entry = by_trace[tid] = TraceSpans()
            entry.entries = [data[f:e]]
            entry.count = count
            entry.has_root = root != 0
            entry.start = lo
            entry.end = hi
            entry.maybe_error = err != 0
            continue
        if lo < entry.start:
            entry.start = lo
        if hi > entry.end:
            entry.end = hi
        entry.entries.append(data[f:e])
        entry.count += count
        if root:
            entry.has_root = True
        if err:
            entry.maybe_error = True
    if scope >= 0:
        chunks.append(_chunk(data, scopes[scope], tail_at[scope], by_trace, spans))
    return chunks


def _chunk(data: bytes, scope: tuple[bytes, bytes, int, int], tail: int, by_trace: dict[bytes, Any],
           spans: int) -> ScopeChunk:
    from collector.wire import ScopeChunk

    resource_fields, scope_fields, _, end = scope
    if tail < end:  # fields after the last span (schema_url): framed and checked by the kernel
        scope_fields += data[tail:end]
    return ScopeChunk(resource_fields, scope_fields, by_trace, spans)


def _compile() -> Callable[..., int]:  # pragma: no cover - compiled code is not traced by coverage
    """Define the kernel with numba (imported here, so the module imports without it)."""
    import numba

    jit = numba.njit(cache=True, boundscheck=False, nogil=True)

    @jit
    def varint(buf: Any, i: int, end: int) -> tuple[int, int]:
        """(value, next index); next index -1 for a truncated or oversized varint. (A ten-byte varint, a
        negative int64, comes out negative: the value says nothing about validity.)"""
        result = 0
        shift = 0
        while i < end and shift <= 63:
            b = buf[i]
            i += 1
            result |= (int(b) & 0x7F) << shift
            if b < 0x80:
                return result, i
            shift += 7
        return result, -1

    @jit
    def skip(buf: Any, wt: int, j: int, end: int) -> int:
        """The index after a field's value of wire type ``wt`` at ``j``; -1 when malformed or a group."""
        if wt == 0:
            _, j = varint(buf, j, end)
            return j
        if wt == 1:
            return j + 8 if j + 8 <= end else -1
        if wt == 5:
            return j + 4 if j + 4 <= end else -1
        if wt == 2:
            ln, j = varint(buf, j, end)
            if j < 0 or ln < 0 or j + ln > end:
                return -1
            return j + ln
        return -1

    @jit
    def has_error_key(buf: Any, p: int, end: int) -> bool:
        """Whether the KeyValue in buf[p:end] has the key "error" (False too when it is malformed)."""
        found = False
        while p < end:
            tag, p = varint(buf, p, end)
            if p < 0:
                return False
            if tag == 0x0A:
                ln, q = varint(buf, p, end)
                if q < 0 or ln < 0 or q + ln > end:
                    return False
                found = (ln == 5 and buf[q] == 0x65 and buf[q + 1] == 0x72 and buf[q + 2] == 0x72
                         and buf[q + 3] == 0x6F and buf[q + 4] == 0x72)
                p = q + ln
            else:
                p = skip(buf, tag & 7, p, end)
                if p < 0:
                    return False
        return found

    @jit
    def status_code(buf: Any, p: int, end: int, code: int) -> tuple[int, bool]:
        """The code in the Status in buf[p:end] (``code`` if it sets none), and False when malformed."""
        while p < end:
            tag, p = varint(buf, p, end)
            if p < 0:
                return code, False
            if tag == 0x18:
                code, p = varint(buf, p, end)
                if p < 0:
                    return code, False
            else:
                p = skip(buf, tag & 7, p, end)
                if p < 0:
                    return code, False
        return code, True

    @jit
    def kernel(buf: Any, scopes: Any, hints: bool, keys: bool, runs: Any, tails: Any) -> int:
        """Fill ``runs`` (see _COLUMNS) and, per scope, where the fields after its last span begin; returns
        the number of runs, or -1: not taken (the other walks decide, and raise for invalid ids)."""
        n = 0
        for si in range(scopes.shape[0]):
            i = scopes[si, 0]
            end = scopes[si, 1]
            tails[si, 0] = end
            prev_tid = -1
            while i < end:
                f = i
                tag, k = varint(buf, i, end)
                if k < 0:
                    return -1
                if tag != 0x12:
                    e = skip(buf, tag & 7, k, end)
                    if e < 0:
                        return -1
                    if tails[si, 0] == end:
                        tails[si, 0] = f
                    i = e
                    continue
                if tails[si, 0] != end:
                    return -1  # a span after other fields: the Python walk keeps that order
                ln, k = varint(buf, k, end)
                if k < 0 or ln < 0 or k + ln > end:
                    return -1
                e = k + ln
                tid = -1
                sid_ok = False
                root = 1
                start = 0
                stop = 0
                code = 0
                err = 0 if hints else 1
                j = k
                while j < e:
                    t = int(buf[j])  # one-byte tags and lengths inline, the rest through varint
                    if t < 0x80:
                        j += 1
                    else:
                        t, j = varint(buf, j, e)
                        if j < 0:
                            return -1
                    wt = t & 7
                    if wt == 2:
                        if j >= e:
                            return -1
                        l2 = int(buf[j])
                        if l2 < 0x80:
                            p = j + 1
                        else:
                            l2, p = varint(buf, j, e)
                            if p < 0 or l2 < 0:
                                return -1
                        if p + l2 > e:
                            return -1
                        if t == 0x0A:  # trace_id
                            if l2 != 16:
                                return -1
                            tid = p
                        elif t == 0x12:  # span_id
                            if l2 != 8:
                                return -1
                            sid_ok = False
                            for q in range(8):
                                if buf[p + q] != 0:
                                    sid_ok = True
                            if not sid_ok:
                                return -1
                        elif t == 0x22:  # parent_span_id
                            if l2 != 0 and l2 != 8:
                                return -1
                            root = 1 if l2 == 0 else 0
                        elif t == 0x4A:  # an attribute
                            if keys and err == 0:
                                # The usual KeyValue: a short key, then at most a short value. Read in place;
                                # any other layout is read field by field (the last key wins).
                                q = p + l2
                                kl = int(buf[p + 1]) if l2 >= 2 and buf[p] == 0x0A else 0x80
                                v = p + 2 + kl
                                if kl < 0x80 and (v == q or (v + 2 <= q and buf[v] == 0x12 and buf[v + 1] < 0x80
                                                             and v + 2 + int(buf[v + 1]) == q)):
                                    if (kl == 5 and buf[p + 2] == 0x65 and buf[p + 3] == 0x72 and buf[p + 4] == 0x72
                                            and buf[p + 5] == 0x6F and buf[p + 6] == 0x72):
                                        err = 1
                                elif has_error_key(buf, p, q):
                                    err = 1
                        elif t == 0x7A:  # status (messages merge: the last code set wins)
                            code, ok = status_code(buf, p, p + l2, code)
                            if not ok:
                                return -1
                        j = p + l2
                    elif wt == 1:
                        if j + 8 > e:
                            return -1
                        if t == 0x39 or t == 0x41:  # start / end time
                            if buf[j + 7] >= 0x80:
                                return -1  # at or above 2**63: the Python walk reads it unsigned
                            v = 0
                            for q in range(8):
                                v |= int(buf[j + q]) << (8 * q)
                            if t == 0x39:
                                start = v
                            else:
                                stop = v
                        j += 8
                    else:
                        j = skip(buf, wt, j, e)
                        if j < 0:
                            return -1
                if j != e or tid < 0 or not sid_ok:
                    return -1
                zero = True
                for q in range(16):
                    if buf[tid + q] != 0:
                        zero = False
                if zero:
                    return -1
                if hints and code == 2:
                    err = 1
                same = prev_tid >= 0
                if same:
                    for q in range(16):
                        if buf[tid + q] != buf[prev_tid + q]:
                            same = False
                            break
                if same:
                    r = n - 1
                    runs[r, 1] = e
                    runs[r, 3] += 1
                    if root:
                        runs[r, 4] = 1
                    if start < runs[r, 5]:
                        runs[r, 5] = start
                    if stop > runs[r, 6]:
                        runs[r, 6] = stop
                    if err:
                        runs[r, 7] = 1
                else:
                    if n >= runs.shape[0]:
                        return -1
                    runs[n, 0] = f
                    runs[n, 1] = e
                    runs[n, 2] = tid
                    runs[n, 3] = 1
                    runs[n, 4] = root
                    runs[n, 5] = start
                    runs[n, 6] = stop
                    runs[n, 7] = err
                    runs[n, 8] = si
                    n += 1
                prev_tid = tid
                i = e
        return n

    return kernel
