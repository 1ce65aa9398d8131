"""The compiled check of live traces (numba, the ``jit`` extra): importing this module imports numba.
Module-level functions, so numba's on-disk cache serves every later process. See
:mod:`pipelines.trace_tests.compiled` for what the arrays hold.

The kernel answers a trace only when it is certain of every spec of every test that applies: that it passes,
or that it fails (which assertions, and the span the first of them fails on first in Tracetest's order).
Anything else (a value it does not read exactly as the Python evaluation does, an origin that does not decide a
selector, bytes it does not expect) is answered ``FALLBACK``: the processor evaluates that trace in Python.

The traces' chunks stay where they are in memory: the kernel reads them through one array that starts at the
lowest of their addresses (offsets in it are from there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic
from numba.np.numpy_support import carray

from collector.wire._column_kernels import _u64
from collector.wire._kernels import skip as _skip
from collector.wire._kernels import varint as _varint
from pipelines.trace_tests._layout import (
    FAILED,
    FALLBACK,
    PASSED,
    R_ASSERTION,
    R_BAD,
    R_SELECTED,
    R_SPAN,
    R_SPAN_END,
    R_SPEC,
    R_TRACE,
    UNTESTED,
)

jit = numba.njit(cache=True, boundscheck=False, nogil=True)
# Small helpers inlined where they are called: a call that passes arrays costs their reference counting,
# more than these helpers' own work.
inline = numba.njit(cache=True, boundscheck=False, nogil=True, inline="always")
# Helpers called per span or spec that allocate nothing: compiled without reference counting (the calls pass
# many arrays, and counting each one's references costs more than these helpers' own work).
_plain: Any = numba.njit(cache=True, boundscheck=False, nogil=True, _nrt=False)  # type: ignore[call-overload]
_F = TypeVar("_F", bound=Callable[..., Any])


def plain(f: _F) -> _F:
    return cast(_F, _plain(f))



_BYTES_POINTER = types.CPointer(types.uint8)  # type: ignore[no-untyped-call]


@intrinsic
def _as_double(typingctx: Any, bits: Any) -> Any:
    """The float64 whose bits are the int64 ``bits`` (a protobuf ``double``'s eight bytes, read little-endian)."""
    sig = types.float64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _pointer(typingctx: Any, address: Any) -> Any:
    """The int64 ``address`` as a pointer to bytes (for :func:`numba.carray`)."""
    sig = _BYTES_POINTER(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(_BYTES_POINTER))

    return sig, codegen

# assertion kinds
A_COUNT, A_NUMBER, A_MASK, A_ATTR_NUMBER, A_ATTR_TEXT, A_NAME_TEXT = 0, 1, 2, 3, 4, 5
# numeric span fields (A_NUMBER) and small-set fields (A_MASK)
F_DURATION, F_START, F_END = 0, 1, 2
F_KIND, F_STATUS = 0, 1
# comparators
C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE, C_CONTAINS, C_NOT_CONTAINS = 0, 1, 2, 3, 4, 5, 6, 7
# attribute value types
V_NONE, V_STRING, V_INT, V_DOUBLE, V_BOOL, V_OTHER = 0, 1, 2, 3, 4, 5
# per span columns
(S_AT, S_END, S_NAME_AT, S_NAME_LEN, S_START, S_STOP, S_KIND, S_CODE, S_NAME_ID, S_ID, S_PARENT, S_ATTRS,
 S_PART, S_ENTRY) = range(14)
S_COLS = 14
# the span-name table's hash (see _name_hash), and the length from which names share one flag of name_lengths
NAME_K1, NAME_K2 = 0x100000001B3, 0x2545F4914F6CDD1D
LONG_NAME = 64


@inline
def _same(buf: Any, a: int, la: int, text: Any, b: int, lb: int) -> bool:
    if la != lb:
        return False
    for q in range(la):  # noqa: SIM110 - a loop numba compiles (no generator)
        if buf[a + q] != text[b + q]:
            return False
    return True


@inline
def _contains(buf: Any, a: int, la: int, text: Any, b: int, lb: int) -> bool:
    if lb == 0:
        return True
    for s in range(la - lb + 1):  # noqa: SIM110 - a loop numba compiles (no generator)
        if _same(buf, a + s, lb, text, b, lb):
            return True
    return False


@inline
def _name_hash(buf: Any, at: int, length: int) -> int:
    """The name table's hash of the ``length`` bytes at ``at`` (:func:`pipelines.trace_tests.compiled.name_hash`
    is the same in Python): the first and last eight bytes, or a short name's bytes, mixed with the length."""
    if length >= 8:
        h = _u64(buf, at) * NAME_K1 ^ _u64(buf, at + length - 8)
    else:
        h = 0
        for q in range(at, at + length):
            h = (h << 8) | int(buf[q])
    return ((h ^ length) * NAME_K2) >> 32


@plain
def _spans(buf: Any, start: int, end: int, part: int, spans: Any, n: int, names: Any, name_bounds: Any,
           name_table: Any, name_lengths: Any, counts: Any) -> int:
    """Read the framed span entries of ``buf[start:end]`` (the chunk ``part``) into ``spans`` from row ``n`` on
    (rows of S_COLS), counting the spans of each wanted name in ``counts`` (the last entry: spans of no wanted
    name); the number of rows then, or -1 when the kernel cannot be certain (malformed, repeated fields, more
    spans than rows, a time at or above 2**63, a span id that is not 8 bytes or is all zero)."""
    i = start
    mask = name_table.shape[0] - 1
    while i < end:
        if buf[i] != 0x12:
            return -1
        ln, k = _varint(buf, i + 1, end)
        if k < 0 or ln < 0 or k + ln > end or n >= spans.shape[0]:
            return -1
        e = k + ln
        sid = 0
        have_sid = False
        parent = 0  # (0: none; a parent id of eight zero bytes is not a span's id either)
        parent_len = -1
        name_at = -1
        name_len = 0
        attrs_at = -1  # where the first attribute field starts (-1: none)
        t0 = 0
        t1 = 0
        kind = 0
        code = 0
        j = k
        while j < e:
            f = j
            t = int(buf[j])  # one-byte tags inline, the rest through _varint
            if t < 0x80:
                j += 1
            else:
                t, j = _varint(buf, j, e)
                if j < 0:
                    return -1
            wt = t & 7
            if t == 0x4A and attrs_at < 0:
                attrs_at = f
            if t == 0x4A or t == 0x0A or t == 0x5A or t == 0x6A:  # (skipped by their length)
                if j >= e:
                    return -1
                ln2 = int(buf[j])
                if ln2 < 0x80:
                    j += 1 + ln2
                    if j > e:
                        return -1
                else:
                    j = _skip(buf, 2, j, e)
                    if j < 0:
                        return -1
            elif t == 0x12:  # span_id
                if have_sid:
                    return -1
                ln2, p = _varint(buf, j, e)
                if p < 0 or ln2 != 8 or p + 8 > e:
                    return -1
                sid = _u64(buf, p)
                have_sid = True
                j = p + 8
            elif t == 0x22:  # parent_span_id
                if parent_len >= 0:
                    return -1
                ln2, p = _varint(buf, j, e)
                if p < 0 or (ln2 != 0 and ln2 != 8) or p + ln2 > e:
                    return -1
                parent_len = ln2
                if ln2 == 8:
                    parent = _u64(buf, p)
                j = p + ln2
            elif t == 0x2A:  # name
                if name_at >= 0:
                    return -1
                ln2, p = _varint(buf, j, e)
                if p < 0 or ln2 < 0 or p + ln2 > e:
                    return -1
                name_at = p
                name_len = ln2
                j = p + ln2
            elif t == 0x39 or t == 0x41:  # start / end time
                if j + 8 > e or buf[j + 7] >= 0x80:
                    return -1
                v = 0
                for q in range(7, -1, -1):
                    v = (v << 8) | int(buf[j + q])
                if t == 0x39:
                    t0 = v
                else:
                    t1 = v
                j += 8
            elif t == 0x30:  # kind
                kind, j = _varint(buf, j, e)
                if j < 0:
                    return -1
            elif t == 0x7A:  # status: messages merge, the last code set wins
                ln2, p = _varint(buf, j, e)
                if p < 0 or ln2 < 0 or p + ln2 > e:
                    return -1
                q = p
                while q < p + ln2:
                    t2, q = _varint(buf, q, p + ln2)
                    if q < 0:
                        return -1
                    if t2 == 0x18:
                        code, q = _varint(buf, q, p + ln2)
                        if q < 0:
                            return -1
                    else:
                        q = _skip(buf, t2 & 7, q, p + ln2)
                        if q < 0:
                            return -1
                j = p + ln2
            else:
                j = _skip(buf, wt, j, e)
                if j < 0:
                    return -1
        if j != e or not have_sid or sid == 0:
            return -1  # (no id, or all zero: the Python evaluation answers)
        if name_at < 0:  # (no name: the decoded span's is "")
            name_at = k
        name_id = -1
        if name_lengths[min(name_len, LONG_NAME)]:  # (some wanted name is as long)
            slot = _name_hash(buf, name_at, name_len) & mask
            while name_table[slot] >= 0:
                c = name_table[slot]
                if _same(buf, name_at, name_len, names, name_bounds[c], name_bounds[c + 1] - name_bounds[c]):
                    name_id = c
                    break
                slot = (slot + 1) & mask
        spans[n, S_AT] = k
        spans[n, S_END] = e
        spans[n, S_NAME_AT] = name_at
        spans[n, S_NAME_LEN] = name_len
        spans[n, S_START] = t0
        spans[n, S_STOP] = t1
        spans[n, S_KIND] = kind
        spans[n, S_CODE] = code
        spans[n, S_NAME_ID] = name_id
        spans[n, S_ID] = sid
        spans[n, S_PART] = part
        spans[n, S_ENTRY] = i
        spans[n, S_PARENT] = parent if parent_len == 8 else 0
        spans[n, S_ATTRS] = attrs_at
        counts[name_id] += 1  # (-1: the last entry)
        n += 1
        i = e
    return n


@plain
def _attribute(buf: Any, at: int, end: int, keys: Any, k0: int, k1: int) -> tuple[int, int, float, int, int]:
    """The attribute named ``keys[k0:k1]`` of the span whose fields from its first attribute on are
    ``buf[at:end]`` (the last one given, as the decoded attributes keep it):
    (type, ok, number, text at, text length); ok 0 when the kernel cannot be certain of it."""
    found = V_NONE
    number = 0.0
    text_at = 0
    text_len = 0
    want = k1 - k0
    j = at
    while j < end:
        t = int(buf[j])  # one-byte tags and lengths inline, the rest through _varint
        if t < 0x80:
            j += 1
        else:
            t, j = _varint(buf, j, end)
            if j < 0:
                return V_NONE, 0, 0.0, 0, 0
        if t != 0x4A:
            j = _skip(buf, t & 7, j, end)
            if j < 0:
                return V_NONE, 0, 0.0, 0, 0
            continue
        if j < end and buf[j] < 0x80:
            ln = int(buf[j])
            p = j + 1
        else:
            ln, p = _varint(buf, j, end)
        if p < 0 or ln < 0 or p + ln > end:
            return V_NONE, 0, 0.0, 0, 0
        e = p + ln
        j = e
        # The usual KeyValue (a short key first, then its value, each once): another key is passed over here.
        if ln >= 2 and buf[p] == 0x0A and buf[p + 1] < 0x80:
            kl = int(buf[p + 1])
            v = p + 2 + kl
            if v + 2 <= e and buf[v] == 0x12 and buf[v + 1] < 0x80 and v + 2 + int(buf[v + 1]) == e and not (
                    kl == want and _same(buf, p + 2, kl, keys, k0, want)):
                continue
        key_at = -1
        key_len = 0
        value_at = -1
        value_end = -1
        q = p
        while q < e:
            t2, q = _varint(buf, q, e)
            if q < 0:
                return V_NONE, 0, 0.0, 0, 0
            if t2 == 0x0A or t2 == 0x12:
                l2, r = _varint(buf, q, e)
                if r < 0 or l2 < 0 or r + l2 > e:
                    return V_NONE, 0, 0.0, 0, 0
                if t2 == 0x0A:
                    if key_at >= 0:
                        return V_NONE, 0, 0.0, 0, 0  # (a key given twice: protobuf keeps the last)
                    key_at = r
                    key_len = l2
                else:
                    if value_at >= 0:
                        return V_NONE, 0, 0.0, 0, 0  # (values given twice merge)
                    value_at = r
                    value_end = r + l2
                q = r + l2
            else:
                q = _skip(buf, t2 & 7, q, e)
                if q < 0:
                    return V_NONE, 0, 0.0, 0, 0
        if key_at < 0 or not _same(buf, key_at, key_len, keys, k0, k1 - k0):
            continue
        # the value: the last field of the oneof that is set wins
        found = V_OTHER
        q = value_at
        while value_at >= 0 and q < value_end:
            t2, q = _varint(buf, q, value_end)
            if q < 0:
                return V_NONE, 0, 0.0, 0, 0
            if t2 == 0x0A:
                l2, r = _varint(buf, q, value_end)
                if r < 0 or l2 < 0 or r + l2 > value_end:
                    return V_NONE, 0, 0.0, 0, 0
                found = V_STRING
                text_at = r
                text_len = l2
                q = r + l2
            elif t2 == 0x18:
                v, q = _varint(buf, q, value_end)
                if q < 0:
                    return V_NONE, 0, 0.0, 0, 0
                found = V_INT
                number = float(np.int64(v))
            elif t2 == 0x10:
                v, q = _varint(buf, q, value_end)
                if q < 0:
                    return V_NONE, 0, 0.0, 0, 0
                found = V_BOOL
            elif t2 == 0x21:
                if q + 8 > value_end:
                    return V_NONE, 0, 0.0, 0, 0
                found = V_DOUBLE
                number = _as_double(_u64(buf, q))  # type: ignore[call-arg]
                q += 8
            else:
                found = V_OTHER
                q = _skip(buf, t2 & 7, q, value_end)
                if q < 0:
                    return V_NONE, 0, 0.0, 0, 0
    return found, 1, number, text_at, text_len


@inline
def _ordered(cmp: int, a: float, b: float) -> bool:
    if cmp == C_EQ:
        return a == b
    if cmp == C_NE:
        return a != b
    if cmp == C_LT:
        return a < b
    if cmp == C_LE:
        return a <= b
    if cmp == C_GT:
        return a > b
    return a >= b


@inline
def _text(cmp: int, buf: Any, a: int, la: int, text: Any, b: int, lb: int) -> bool:
    if cmp == C_EQ:
        return _same(buf, a, la, text, b, lb)
    if cmp == C_NE:
        return not _same(buf, a, la, text, b, lb)
    if cmp == C_CONTAINS:
        return _contains(buf, a, la, text, b, lb)
    return not _contains(buf, a, la, text, b, lb)


HOLDS, FAILS, UNSURE = 1, 0, -1


@plain
def _holds(buf: Any, spans: Any, s: int, a: int, a_kind: Any, a_cmp: Any, a_field: Any, a_num: Any,
           a_text: Any, text: Any) -> int:
    """Assertion ``a`` on span row ``s``: HOLDS, FAILS (as the Python check answers it), or UNSURE (a value the
    kernel does not read as Python does: text holding a number, a number as text, bytes, arrays, maps)."""
    kind = a_kind[a]
    cmp = a_cmp[a]
    if kind == A_NUMBER:
        f = a_field[a]
        if f == F_DURATION:
            t0 = spans[s, S_START]
            t1 = spans[s, S_STOP]
            v = max(0, t1 - t0) if t0 and t1 else 0
        elif f == F_START:
            v = spans[s, S_START]
        else:
            v = spans[s, S_STOP]
        return HOLDS if _ordered(cmp, float(v), a_num[a]) else FAILS
    if kind == A_MASK:
        if a_field[a] == F_KIND:
            v = spans[s, S_KIND]
            v = v if 0 <= v <= 5 else 0
        else:
            v = spans[s, S_CODE]
            v = v if 0 <= v <= 2 else 0
        return HOLDS if (int(a_num[a]) >> v) & 1 == 1 else FAILS
    if kind == A_NAME_TEXT:
        same = _text(cmp, buf, spans[s, S_NAME_AT], spans[s, S_NAME_LEN], text, a_text[a, 0], a_text[a, 1])
        return HOLDS if same else FAILS
    # an attribute of the span's own
    first = spans[s, S_ATTRS]
    if first < 0:
        return FAILS  # (the span has no attributes)
    vt, ok, number, at, ln = _attribute(buf, first, spans[s, S_END], text, a_text[a, 2], a_text[a, 3])
    if not ok:
        return UNSURE
    if vt == V_NONE:
        return FAILS  # (the span has no such attribute)
    if kind == A_ATTR_NUMBER:
        if vt in (V_INT, V_DOUBLE):
            return HOLDS if _ordered(cmp, number, a_num[a]) else FAILS
        return FAILS if vt == V_BOOL else UNSURE
    if vt == V_STRING:
        return HOLDS if _text(cmp, buf, at, ln, text, a_text[a, 0], a_text[a, 1]) else FAILS
    return UNSURE


@inline
def _picks(spans: Any, r: int, want: int, verdicts: Any, part_row: Any, sel: int) -> bool:
    """Whether selector ``sel`` (spans named ``want``, -1 any) selects span row ``r`` (its origin decided)."""
    return bool((want < 0 or spans[r, S_NAME_ID] == want) and verdicts[part_row[spans[r, S_PART]], sel] == 1)


@plain
def _select(spans: Any, n: int, want: int, verdicts: Any, part_row: Any, sel: int) -> int:
    """How many spans selector ``sel`` selects; -1 when the origin of a span of the name does not decide."""
    count = 0
    for r in range(n):
        if want < 0 or spans[r, S_NAME_ID] == want:
            v = verdicts[part_row[spans[r, S_PART]], sel]
            if v == 2:
                return -1
            count += v
    return count


@plain
def _spec(buf: Any, spans: Any, n: int, want: int, sel: int, verdicts: Any, part_row: Any, selected: int,
          first: int, last: int, a_kind: Any, a_cmp: Any, a_field: Any, a_num: Any, a_text: Any, text: Any,
          ranks: Any, seen: Any, stamp: int, work: Any) -> tuple[int, int, int, int]:
    """The spec whose assertions are ``first`` to ``last``, on the ``selected`` spans selector ``sel`` picks:
    (HOLDS or FAILS or UNSURE, the failed assertions as bits, the first failed assertion, the row of the first
    span in Tracetest's order it fails on, or -1 with no span selected). UNSURE when a value is not read as
    Python reads it, or the spec has more than 62 assertions. ``ranks``: scratch for the order."""
    if last - first > 62:
        return UNSURE, 0, -1, -1
    bad = 0
    first_bad = -1
    first_row = -1
    ranked = False
    for a in range(first, last):
        if a_kind[a] == A_COUNT:
            if not _ordered(a_cmp[a], float(selected), a_num[a]):
                bad |= 1 << (a - first)
                if first_bad < 0:
                    first_bad = a
                    if selected > 0:  # (every selected span fails it: the first in order is the report's)
                        if not ranked:
                            if not _ranks(spans, n, ranks, seen, stamp, work):
                                return UNSURE, 0, -1, -1
                            ranked = True
                        for r in range(n):
                            if _picks(spans, r, want, verdicts, part_row, sel) and (
                                    first_row < 0 or ranks[r] < ranks[first_row]):
                                first_row = r
            continue
        if selected == 0:  # (no span selected: an assertion on a span fails)
            bad |= 1 << (a - first)
            if first_bad < 0:
                first_bad = a
            continue
        row = -1
        failed_on = 0
        for r in range(n):
            if _picks(spans, r, want, verdicts, part_row, sel):
                h = _holds(buf, spans, r, a, a_kind, a_cmp, a_field, a_num, a_text, text)
                if h == UNSURE:
                    return UNSURE, 0, -1, -1
                if h == FAILS:
                    failed_on += 1
                    if row < 0:
                        row = r
                    elif first_bad < 0:
                        if not ranked:
                            if not _ranks(spans, n, ranks, seen, stamp, work):
                                return UNSURE, 0, -1, -1
                            ranked = True
                        if ranks[r] < ranks[row]:
                            row = r
        if failed_on:
            if first_bad < 0:
                first_bad = a
                first_row = row
            bad |= 1 << (a - first)
    if bad == 0:
        return HOLDS, 0, -1, -1
    return FAILS, bad, first_bad, first_row


@inline
def _slot(sid: int, mask: int) -> int:
    return (sid * 0x9E3779B97F4A7C15) >> 40 & mask


@plain
def _unique(spans: Any, n: int, seen: Any, stamp: int) -> bool:
    """Whether the first ``n`` span rows have different span ids; files each (id, stamp, row) in ``seen``, an
    open-addressing table a power of two at least twice ``n`` long, for :func:`_parent` (a table row holds an
    id of this trace only when it bears ``stamp``: no clearing between traces)."""
    mask = seen.shape[0] - 1
    for r in range(n):
        sid = spans[r, S_ID]
        slot = _slot(sid, mask)
        while seen[slot, 1] == stamp:
            if seen[slot, 0] == sid:
                return False
            slot = (slot + 1) & mask
        seen[slot, 0] = sid
        seen[slot, 1] = stamp
        seen[slot, 2] = r
    return True


@inline
def _parent(spans: Any, r: int, seen: Any, stamp: int) -> int:
    """The row of span ``r``'s parent in the trace (-1: none there, or itself), from :func:`_unique`'s table."""
    p = spans[r, S_PARENT]
    if p == 0 or p == spans[r, S_ID]:
        return -1
    mask = seen.shape[0] - 1
    slot = _slot(p, mask)
    while seen[slot, 1] == stamp:
        if seen[slot, 0] == p:
            return int(seen[slot, 2])
        slot = (slot + 1) & mask
    return -1


@inline
def _id_key(sid: int) -> int:
    """A span id read little-endian (its S_ID) as its bytes read big-endian with the top bit flipped: ordered
    as the id's bytes are."""
    key = 0
    for _ in range(8):
        key = (key << 8) | (sid & 0xFF)
        sid >>= 8
    return key ^ (1 << 63)


@inline
def _before(spans: Any, a: int, b: int) -> bool:
    """Span row ``a`` comes before ``b`` among siblings: by start time, then span id (as bytes)."""
    return bool(spans[a, S_START] < spans[b, S_START] or (
        spans[a, S_START] == spans[b, S_START] and _id_key(spans[a, S_ID]) < _id_key(spans[b, S_ID])))


@plain
def _ranks(spans: Any, n: int, out: Any, seen: Any, stamp: int, work: Any) -> bool:
    """``out[r]``: span row ``r``'s place in Tracetest's order (depth first from the roots, children by start
    time, then id), as TestTrace orders them. False when some span is not reached from a root (a cycle of
    parents: the Python evaluation orders those). ``work``: scratch, 4 rows of at least ``n + 2``."""
    parent = work[0]
    first = work[1]  # children of row r: first[r + 1] to first[r + 2]; roots: 0 to first[1]
    children = work[2]
    stack = work[3]
    for g in range(n + 2):
        first[g] = 0
    for r in range(n):
        parent[r] = _parent(spans, r, seen, stamp)
        first[parent[r] + 2] += 1
    for r in range(n + 1):
        first[r + 1] += first[r]
    for r in range(n):  # (first[g] serves as list g's fill pointer: it ends at the list's end, the next's start)
        g = parent[r] + 1
        children[first[g]] = r
        first[g] += 1
    for g in range(n, -1, -1):
        first[g + 1] = first[g]
    first[0] = 0
    for g in range(n + 1):  # each list by start time, then id (insertion sort: lists are short)
        for x in range(first[g] + 1, first[g + 1]):
            v = children[x]
            y = x - 1
            while y >= first[g] and _before(spans, v, children[y]):
                children[y + 1] = children[y]
                y -= 1
            children[y + 1] = v
    top = 0
    for x in range(first[1] - 1, first[0] - 1, -1):  # the roots, the first on top
        stack[top] = children[x]
        top += 1
    rank = 0
    while top:
        top -= 1
        r = stack[top]
        out[r] = rank
        rank += 1
        for x in range(first[r + 2] - 1, first[r + 1] - 1, -1):
            stack[top] = children[x]
            top += 1
    return rank == n


@plain
def _root(spans: Any, n: int, seen: Any, stamp: int) -> int:
    """The row of the trace's root in Tracetest's order: among the spans with no parent in the trace (or
    their own id as parent), the first by start time, then span id (as bytes). -1 with no span."""
    best = -1
    for r in range(n):
        if _parent(spans, r, seen, stamp) < 0 and (best < 0 or _before(spans, r, best)):
            best = r
    return best


@jit
def check(base: int, size: int, part_at: Any, part_len: Any, part_row: Any, trace_parts: Any, verdicts: Any,
          names: Any, name_bounds: Any, name_table: Any, name_lengths: Any, sel_name: Any, test_first: Any,
          test_specs: Any, spec_sel: Any, spec_asserts: Any, a_kind: Any, a_cmp: Any, a_field: Any, a_num: Any,
          a_text: Any, text: Any, spans: Any, status: Any, applied: Any, failed: Any, roots: Any) -> tuple[int, int]:
    """Check each trace ``t``: its chunks (framed span entries, one origin each) are parts
    ``trace_parts[t]`` to ``trace_parts[t + 1]``; part ``p`` is the ``part_len[p]`` bytes at ``part_at[p]``
    in the ``size`` bytes of memory from address ``base`` (the caller keeps them alive and unchanged during the
    call), its origin's verdicts are ``verdicts[part_row[p]]``; a negative ``part_row[p]`` is the complement of
    a row whose origin no test's first selector can select: that part is read only once a test applies, and
    its row is then made the row itself (``part_row`` is changed). ``name_lengths[min(length, LONG_NAME)]`` is 1
    when some wanted name is that long: only span names of such a length are looked up in ``name_table``.

    ``status[t]`` is UNTESTED (no test applies), PASSED (every live spec of the tests that apply passes),
    FAILED (each such spec certainly passes or fails, one at least fails) or FALLBACK. For PASSED and FAILED
    traces the tests that applied go to ``applied`` (rows of trace, test), each failed spec to ``failed``
    (rows of R_COLS: trace, spec, failed assertions as bits, the first failed assertion, where the span it
    fails on starts and ends or -1, the spans selected), and for FAILED traces ``roots[t]`` holds where the
    root span's entry, span and end are (-1: no root). Offsets are from ``base``. Returns the rows of
    ``applied`` and of ``failed``, or (-1, -1) when either has too few rows (call again with more)."""
    buf = carray(_pointer(base), (size,))  # type: ignore[call-arg]
    na = 0
    nf = 0
    ntests = test_first.shape[0]
    counts = np.zeros(name_bounds.shape[0], dtype=np.int64)  # per wanted name, and (last) any other
    ranks = np.empty(spans.shape[0], dtype=np.int64)
    work = np.empty((4, spans.shape[0] + 2), dtype=np.int64)  # (see _ranks)
    size = 16
    while size < 2 * spans.shape[0]:
        size *= 2
    seen = np.zeros((size, 3), dtype=np.int64)  # (see _unique; stamps from 1)
    for t in range(trace_parts.shape[0] - 1):
        for q in range(counts.shape[0]):
            counts[q] = 0
        n = 0
        for p in range(trace_parts[t], trace_parts[t + 1]):
            if part_row[p] >= 0:  # (the other parts are read once some test applies)
                n = _spans(buf, part_at[p], part_at[p] + part_len[p], p, spans, n, names, name_bounds, name_table,
                           name_lengths, counts)
                if n < 0:
                    break
        if n < 0:
            status[t] = FALLBACK
            continue
        result = UNTESTED
        first_applied = na
        first_failed = nf
        whole = False  # (every part read, the span ids checked: once a first selector selects a span)
        for ti in range(ntests):
            sel = test_first[ti]
            want = sel_name[sel]
            if (n if want < 0 else counts[want]) == 0:
                continue  # (no span of the name: the test is not about the trace)
            picked = _select(spans, n, want, verdicts, part_row, sel)  # (the parts not yet read: none selected)
            if picked == 0:
                continue
            if not whole:
                for p in range(trace_parts[t], trace_parts[t + 1]):
                    if part_row[p] < 0:
                        part_row[p] = ~part_row[p]
                        n = _spans(buf, part_at[p], part_at[p] + part_len[p], p, spans, n, names, name_bounds,
                                   name_table, name_lengths, counts)
                        if n < 0:
                            break
                if n < 0 or not _unique(spans, n, seen, t + 1):  # (Python keeps a span id's first copy)
                    result = FALLBACK
                    break
                whole = True
            if na >= applied.shape[0]:
                return -1, -1  # (more rows needed: the caller calls again with more)
            if picked < 0:
                result = FALLBACK
                break
            applied[na, 0] = t
            applied[na, 1] = ti
            na += 1
            if result == UNTESTED:
                result = PASSED
            for p in range(test_specs[ti], test_specs[ti + 1]):
                sp = spec_sel[p]
                if sp == -1:
                    continue  # (not checked live: not_applicable)
                if sp == -2:
                    result = FALLBACK
                    break
                want = sel_name[sp]
                selected = 0
                if (n if want < 0 else counts[want]) > 0:
                    selected = _select(spans, n, want, verdicts, part_row, sp)
                    if selected < 0:
                        result = FALLBACK
                        break
                got, bad, first_bad, span_row = _spec(buf, spans, n, want, sp, verdicts, part_row, selected,
                                                      spec_asserts[p], spec_asserts[p + 1], a_kind, a_cmp, a_field,
                                                      a_num, a_text, text, ranks, seen, t + 1, work)
                if got == FAILS and nf >= failed.shape[0]:
                    return -1, -1  # (more rows needed: the caller calls again with more)
                if got == UNSURE:
                    result = FALLBACK
                    break
                if got == FAILS:
                    failed[nf, R_TRACE] = t
                    failed[nf, R_SPEC] = p
                    failed[nf, R_BAD] = bad
                    failed[nf, R_ASSERTION] = first_bad - spec_asserts[p]
                    failed[nf, R_SPAN] = spans[span_row, S_AT] if span_row >= 0 else -1
                    failed[nf, R_SPAN_END] = spans[span_row, S_END] if span_row >= 0 else -1
                    failed[nf, R_SELECTED] = selected
                    nf += 1
                    result = FAILED
            if result == FALLBACK:
                break
        if result in (FALLBACK, UNTESTED):
            na = first_applied  # (a trace answered in Python: its rows are not counted here)
            nf = first_failed
        elif result == FAILED:
            root = _root(spans, n, seen, t + 1)
            roots[t, 0] = spans[root, S_ENTRY] if root >= 0 else -1
            roots[t, 1] = spans[root, S_AT] if root >= 0 else -1
            roots[t, 2] = spans[root, S_END] if root >= 0 else -1
        status[t] = result
    return na, nf
