"""The compiled kernels of :mod:`collector.wire_jit` (imported only when numba is wanted: importing this
module imports numba). Module-level functions, so numba's on-disk cache serves every later process."""

from __future__ import annotations

from typing import Any

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
