"""The compiled kernels of the compiled walk and check (:mod:`._jit`; imported only when numba is wanted:
importing this module imports numba). Module-level functions, so numba's on-disk cache serves every later
process."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from collector.wire._split_layout import SCOPE_END, SCOPE_FIRST, SCOPE_GROUP, SCOPE_RS, SCOPE_START, SCOPE_TAIL

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
def value_true(buf: Any, p: int, end: int) -> bool:
    """Whether the AnyValue in buf[p:end] is bool true or the string "true" in any case (the last of its
    oneof fields counts, as protobuf reads it); True too when it is malformed (the exact check decides)."""
    found = False
    while p < end:
        tag, p = varint(buf, p, end)
        if p < 0:
            return True
        if tag == 0x10:  # bool_value
            v, p = varint(buf, p, end)
            if p < 0:
                return True
            found = v != 0
        elif tag == 0x0A:  # string_value
            ln, q = varint(buf, p, end)
            if q < 0 or ln < 0 or q + ln > end:
                return True
            found = (ln == 4 and (buf[q] | 0x20) == 0x74 and (buf[q + 1] | 0x20) == 0x72
                     and (buf[q + 2] | 0x20) == 0x75 and (buf[q + 3] | 0x20) == 0x65)
            p = q + ln
        else:
            p = skip(buf, tag & 7, p, end)
            if p < 0:
                return True
            found = False  # another kind of value
    return found


@jit
def error_key_true(buf: Any, p: int, end: int) -> bool:
    """Whether the KeyValue in buf[p:end] is ``error`` = true (False when it is malformed: the exact check
    of the span then fails anyway, or it is not an ``error`` attribute)."""
    found = False
    values = 0
    v0 = 0
    v1 = 0
    while p < end:
        tag, p = varint(buf, p, end)
        if p < 0:
            return False
        if tag == 0x0A or tag == 0x12:
            ln, q = varint(buf, p, end)
            if q < 0 or ln < 0 or q + ln > end:
                return False
            if tag == 0x0A:
                found = (ln == 5 and buf[q] == 0x65 and buf[q + 1] == 0x72 and buf[q + 2] == 0x72
                         and buf[q + 3] == 0x6F and buf[q + 4] == 0x72)
            else:
                values += 1
                v0 = q
                v1 = q + ln
            p = q + ln
        else:
            p = skip(buf, tag & 7, p, end)
            if p < 0:
                return False
    if not found or values == 0:
        return False
    return values > 1 or value_true(buf, v0, v1)  # values that merge: say "maybe"


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
def _same_bytes(buf: Any, a: int, b: int, n: int) -> bool:
    for q in range(n):  # noqa: SIM110 - a loop numba compiles (no generator)
        if buf[a + q] != buf[b + q]:
            return False
    return True


@jit
def containers(buf: Any, scopes: Any, others: Any) -> int:
    """Walk the containers of an ``ExportTraceServiceRequest`` (not the spans): a row of ``scopes`` per
    ``ScopeSpans`` (see SCOPE_*) and a row of ``others`` per other field of a ``ResourceSpans`` (its index,
    field start, field end: the framed fields that make its resource's bytes). Consecutive scopes of one
    ResourceSpans whose fields other than the spans are the same bytes (one ``ScopeSpans`` a span, as some
    encoders write) get one group: their spans make one chunk. Returns the number of scopes, -1: not taken
    (malformed, a tag of more than a byte, a span after a ScopeSpans' other fields: the Python walk decides
    and raises), or -2: more rows needed than the arrays have (the number of ``others`` rows is in
    ``others[-1, 0]``)."""
    size = len(buf)
    ns = 0
    no = 0
    nrs = 0
    max_others = others.shape[0] - 1
    i = 0
    while i < size:
        tag = int(buf[i])
        if tag >= 0x80:
            return -1
        if tag != 0x0A:
            i = skip(buf, tag & 7, i + 1, size)
            if i < 0:
                return -1
            continue
        ln, i = varint(buf, i + 1, size)
        if i < 0 or ln < 0 or i + ln > size:
            return -1
        rs_end = i + ln
        rs = nrs
        nrs += 1
        prev = -1  # the previous scope of this ResourceSpans
        j = i
        while j < rs_end:
            f = j
            t = int(buf[j])
            if t >= 0x80:
                return -1
            if t != 0x12:
                j = skip(buf, t & 7, j + 1, rs_end)
                if j < 0:
                    return -1
                if no >= max_others:
                    return -2
                others[no, 0] = rs
                others[no, 1] = f
                others[no, 2] = j
                no += 1
                continue
            m, j = varint(buf, j + 1, rs_end)
            if j < 0 or m < 0 or j + m > rs_end:
                return -1
            ss_end = j + m
            first = ss_end
            tail = ss_end
            q = j
            while q < ss_end:
                t2 = int(buf[q])
                if t2 >= 0x80:
                    return -1
                if t2 == 0x12:
                    if tail != ss_end:
                        return -1  # a span after other fields
                    if first == ss_end:
                        first = q
                elif first != ss_end and tail == ss_end:
                    tail = q
                q = skip(buf, t2 & 7, q + 1, ss_end)
                if q < 0:
                    return -1
            if ns >= scopes.shape[0]:
                return -2
            scopes[ns, SCOPE_RS] = rs
            scopes[ns, SCOPE_START] = j
            scopes[ns, SCOPE_FIRST] = first
            scopes[ns, SCOPE_TAIL] = tail
            scopes[ns, SCOPE_END] = ss_end
            group = ns
            if prev >= 0:
                p_head = scopes[prev, SCOPE_FIRST] - scopes[prev, SCOPE_START]
                p_tail = scopes[prev, SCOPE_END] - scopes[prev, SCOPE_TAIL]
                if (p_head == first - j and p_tail == ss_end - tail
                        and _same_bytes(buf, scopes[prev, SCOPE_START], j, p_head)
                        and _same_bytes(buf, scopes[prev, SCOPE_TAIL], tail, p_tail)):
                    group = scopes[prev, SCOPE_GROUP]
            scopes[ns, SCOPE_GROUP] = group
            prev = ns
            ns += 1
            j = ss_end
        i = rs_end
    others[max_others, 0] = no
    return ns


@jit
def kernel(buf: Any, scopes: Any, hints: bool, keys: bool, runs: Any) -> int:
    """Fill ``runs`` (see _COLUMNS) from the spans of each scope (``scopes``: rows of SCOPE_COLUMNS, spans
    between SCOPE_FIRST and SCOPE_TAIL, as :func:`containers` found them; the run's last column is the
    scope's SCOPE_GROUP); returns the number of runs, -1: not taken (the other walks decide, and raise for
    invalid ids), or -2: more runs than ``runs`` has rows (call again with more)."""
    n = 0
    for si in range(scopes.shape[0]):
        i = scopes[si, SCOPE_FIRST]
        end = scopes[si, SCOPE_TAIL]
        group = scopes[si, SCOPE_GROUP]
        prev_tid = -1
        while i < end:
            f = i
            tag, k = varint(buf, i, end)
            if k < 0 or tag != 0x12:
                return -1
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
            attr = 0  # an ``error`` attribute that is true
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
                        if keys and attr == 0 and err == 0:
                            # The usual KeyValue: a short key, then at most a short value. Read in place;
                            # any other layout is read field by field (the last key wins). Only a value
                            # that is true counts (``error = false`` on every span is common).
                            q = p + l2
                            kl = int(buf[p + 1]) if l2 >= 2 and buf[p] == 0x0A else 0x80
                            v = p + 2 + kl
                            if kl < 0x80 and (v == q or (v + 2 <= q and buf[v] == 0x12 and buf[v + 1] < 0x80
                                                         and v + 2 + int(buf[v + 1]) == q)):
                                if (kl == 5 and v < q and buf[p + 2] == 0x65 and buf[p + 3] == 0x72
                                        and buf[p + 4] == 0x72 and buf[p + 5] == 0x6F and buf[p + 6] == 0x72
                                        and value_true(buf, v + 2, q)):
                                    attr = 1
                            elif error_key_true(buf, p, q):
                                attr = 1
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
            if hints and (code == 2 or (attr and code != 1)):  # status OK wins over the attribute
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
                    return -2
                runs[n, 0] = f
                runs[n, 1] = e
                runs[n, 2] = tid
                runs[n, 3] = 1
                runs[n, 4] = root
                runs[n, 5] = start
                runs[n, 6] = stop
                runs[n, 7] = err
                runs[n, 8] = group
                n += 1
            prev_tid = tid
            i = e
    return n


# Field kinds of the request schema table (_jit.request_schema builds it from the protobuf descriptors).
UNKNOWN_FIELD = 0
VARINT_FIELD = 1
FIXED64_FIELD = 2
FIXED32_FIELD = 3
STRING_FIELD = 4
BYTES_FIELD = 5
MESSAGE_FIELD = 6
DEFER_FIELD = 7  # a field the check leaves to protobuf (a group, a repeated number)
MAX_DEPTH = 48  # nesting the check follows (protobuf's own limit is 100): deeper asks protobuf


@jit
def or_bytes(buf: Any, start: int, stop: int) -> int:
    """The bytes of buf[start:stop] or-ed together (a loop the compiler vectorizes: 16 bytes a ns)."""
    acc = np.uint8(0)
    part = buf[start:stop]  # indices from 0: range(start, stop) would keep negative-index handling
    for q in range(part.shape[0]):
        acc |= part[q]
    return int(acc)


@jit
def check_request(buf: Any, table: Any, width: int, counted: int) -> int:
    """Whether protobuf is certain to decode ``buf`` as the table's message 0 without error: the number of
    messages of type ``counted`` in it (the spans of a request) when certain, else -1.

    ``table[m * width + f]``: field ``f`` of message ``m`` (numbers from ``width`` on are unknown fields),
    its kind in the low three bits and, for a MESSAGE_FIELD, the message it holds above. Certain means every
    field is well formed for its kind (lengths inside their message, varints of at most ten bytes and 64
    bits), every known field has its declared wire type, unknown fields are skipped by their wire type, and
    every string is ASCII (so valid UTF-8), and no span repeats an id field (trace, span or parent span id:
    protobuf keeps the last of them, the split walks read the first). -1 means "not certain": anything else
    (a group, a wire type that does not match, a string with a non-ASCII byte, nesting deeper than
    MAX_DEPTH, a repeated id field, malformed bytes) goes to protobuf, which accepts it or names the error.

    The ASCII check runs over the gaps between the binary parts of the message (ids and other bytes
    fields, fixed-width numbers, multi-byte varints, unknown fields), not string by string: a gap holds
    only strings and one-byte tags and lengths, which are below 0x80 themselves, so a gap's bytes or-ed
    together are below 0x80 exactly when its strings are ASCII. That is a few long runs a span instead of
    one short loop per string. (Indices are cast to unsigned where they are read: numba then leaves out its
    negative-index handling, about a tenth of the instructions. Each branch flushes the gap itself: one
    shared flush after the branches, with the binary extent computed per field, cost a quarter more
    instructions.)"""
    stack_msg = np.empty(MAX_DEPTH, dtype=np.int64)
    stack_end = np.empty(MAX_DEPTH, dtype=np.int64)
    depth = 0
    msg = 0
    end = len(buf)
    i = 0
    checked = 0  # the bytes before this are binary or or-ed into ``high``
    high = np.uint8(0)
    strings = False  # a string lies between ``checked`` and ``i``
    count = 0
    ids_seen = 0  # the id fields (1, 2, 4: bits by number) of the current span read so far
    while True:
        if i >= end:
            if depth == 0:
                break
            depth -= 1
            msg = stack_msg[depth]
            end = stack_end[depth]
            continue
        f = i
        tag = int(buf[np.uint64(i)])
        if tag < 0x80:
            i += 1
        else:
            tag, i = varint(buf, i, end)
            if i < 0 or i - f > 5 or tag >= 0x100000000:
                return -1  # protobuf reads a tag as at most five bytes and 32 bits
            if strings:
                high |= or_bytes(buf, checked, f)
                strings = False
            checked = i
        number = tag >> 3
        wt = tag & 7
        if number == 0:
            return -1
        entry = table[np.uint64(msg * width + number)] if number < width else UNKNOWN_FIELD
        kind = entry & 7
        if wt == 2:
            if kind != UNKNOWN_FIELD and kind != STRING_FIELD and kind != BYTES_FIELD and kind != MESSAGE_FIELD:
                return -1
            if i >= end:
                return -1
            ln = int(buf[np.uint64(i)])
            if ln < 0x80:
                i += 1
            else:
                f = i
                ln, i = varint(buf, i, end)
                if i < 0 or i - f > 5 or ln >= 0x7FFFFFFF:
                    return -1  # protobuf reads a length as at most five bytes, below 2**31 - 1
                if strings:
                    high |= or_bytes(buf, checked, f)
                    strings = False
                checked = i
            e = i + ln
            if e > end:
                return -1
            if msg == counted and (number == 1 or number == 2 or number == 4):
                if ids_seen & (1 << number):
                    return -1  # an id field repeated: protobuf keeps the last, the walks read the first
                ids_seen |= 1 << number
            if kind == MESSAGE_FIELD:
                if depth >= MAX_DEPTH:
                    return -1
                stack_msg[depth] = msg
                stack_end[depth] = end
                depth += 1
                msg = entry >> 3
                end = e
                if msg == counted:
                    count += 1
                    ids_seen = 0
                continue
            if kind == STRING_FIELD:
                strings = True
            elif e > i:  # bytes, or an unknown field: binary
                if strings:
                    high |= or_bytes(buf, checked, i)
                    strings = False
                checked = e
            i = e
        elif wt == 0:
            if kind != UNKNOWN_FIELD and kind != VARINT_FIELD:
                return -1
            if i < end and buf[np.uint64(i)] < 0x80:  # a one-byte value
                i += 1
                continue
            k = i
            stop = i + 10 if i + 10 < end else end
            while k < stop and buf[np.uint64(k)] >= 0x80:
                k += 1
            if k >= stop or (k - i == 9 and buf[np.uint64(k)] > 1):
                return -1  # truncated, longer than ten bytes, or past 64 bits
            if strings:
                high |= or_bytes(buf, checked, i)
                strings = False
            i = k + 1
            checked = i
        elif wt == 1 or wt == 5:
            size = 8 if wt == 1 else 4
            if (kind != UNKNOWN_FIELD and kind != (FIXED64_FIELD if wt == 1 else FIXED32_FIELD)) or i + size > end:
                return -1
            if strings:
                high |= or_bytes(buf, checked, i)
                strings = False
            i += size
            checked = i
        else:
            return -1
    if strings:
        high |= or_bytes(buf, checked, len(buf))
    return count if high < 0x80 else -1
