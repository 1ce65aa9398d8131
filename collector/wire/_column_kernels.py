"""The compiled walk of every span of a request into columns (numba, the ``jit`` extra; importing this module
imports numba): what the span-derived metrics read without a Python object per span. See
:mod:`collector.wire._columns`. Module-level functions, so numba's on-disk cache serves every later process."""

from __future__ import annotations

from typing import Any

import numpy as np

from collector.wire._column_layout import (
    END,
    FNV_OFFSET,
    FNV_PRIME,
    KIND,
    NAME_AT,
    NAME_LEN,
    PARENT_AT,
    RS,
    SPAN_AT,
    SPAN_BEGIN,
    SPAN_END,
    START,
    STATUS,
    TRACE_AT,
)
from collector.wire._kernels import jit
from collector.wire._kernels import skip as _skip
from collector.wire._kernels import varint as _varint


@jit
def _fnv(buf: Any, a: int, b: int) -> np.uint64:
    h = np.uint64(FNV_OFFSET)
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * np.uint64(FNV_PRIME)
    return h


@jit
def _u64(buf: Any, p: int) -> int:
    v = 0
    for k in range(7, -1, -1):
        v = (v << 8) | int(buf[p + k])
    return v


@jit
def _attributes(buf: Any, a: int, b: int, keys: Any, bounds: Any, hashes: Any, attrs: Any, row: int) -> int:
    """Find the wanted attribute keys among the span fields in ``buf[a:b]``: the first string value of each
    (its FNV-1a hash, offset and length). Returns 0, or -1 when malformed. (The walk reads a span's
    attributes as it goes when the span's kind comes first, as encoders write it; this second look is for
    the other spans.)"""
    j = a
    while j < b:
        tag, j = _varint(buf, j, b)
        if j < 0:
            return -1
        f, wt = tag >> 3, tag & 7
        if f != 9 or wt != 2:
            j = _skip(buf, wt, j, b)
            if j < 0:
                return -1
            continue
        ln, j = _varint(buf, j, b)
        if j < 0 or j + ln > b:
            return -1
        if _attribute(buf, j, j + ln, keys, bounds, hashes, attrs, row) < 0:
            return -1
        j += ln
    return 0


@jit
def _attribute(buf: Any, j: int, kv_end: int, keys: Any, bounds: Any, hashes: Any, attrs: Any, row: int) -> int:
    """The KeyValue in ``buf[j:kv_end]``: when its key is a wanted one not yet found for the row, its string
    value (see :func:`_attributes`). Returns 0, or -1 when malformed."""
    nkeys = len(bounds) - 1
    key_at, key_len, val_at, val_len = -1, 0, -1, 0
    q = j
    while q < kv_end:
        t, q = _varint(buf, q, kv_end)
        if q < 0:
            return -1
        if t == 0x0A:  # key
            n, q = _varint(buf, q, kv_end)
            if q < 0 or q + n > kv_end:
                return -1
            key_at, key_len = q, n
            q += n
        elif t == 0x12:  # value: AnyValue; its string_value is field 1
            n, q = _varint(buf, q, kv_end)
            if q < 0 or q + n > kv_end:
                return -1
            r, r_end = q, q + n
            while r < r_end:
                t2, r = _varint(buf, r, r_end)
                if r < 0:
                    return -1
                if t2 == 0x0A:
                    m, r = _varint(buf, r, r_end)
                    if r < 0 or r + m > r_end:
                        return -1
                    val_at, val_len = r, m
                    r += m
                else:
                    r = _skip(buf, t2 & 7, r, r_end)
                    if r < 0:
                        return -1
            q = r_end
        else:
            q = _skip(buf, t & 7, q, kv_end)
            if q < 0:
                return -1
    if key_at < 0 or val_at < 0:
        return 0
    for k in range(nkeys):
        ka, kb = bounds[k], bounds[k + 1]
        if kb - ka != key_len or attrs[row, 2 * k] >= 0:
            continue
        same = True
        for x in range(key_len):
            if buf[key_at + x] != keys[ka + x]:
                same = False
                break
        if same:
            attrs[row, 2 * k] = val_at
            attrs[row, 2 * k + 1] = val_len
            hashes[row, 1 + k] = _fnv(buf, val_at, val_at + val_len)
    return 0


@jit
def walk(buf: Any, cols: Any, hashes: Any, attrs: Any, resources: Any, keys: Any, bounds: Any,
         attr_min_kind: int, attr_max_kind: int, hash_names: bool) -> int:
    """Read every span of an ``ExportTraceServiceRequest`` into ``cols`` (one row per span, see the column
    names), the FNV-1a hash of its name into ``hashes[:, 0]`` (when ``hash_names``), and, for spans whose kind
    is between ``attr_min_kind`` and ``attr_max_kind``, the wanted attribute values (``keys`` split at ``bounds``) into
    ``attrs`` and ``hashes[:, 1:]``. ``resources`` gets each ResourceSpans' resource field range. Returns the
    number of spans (resources in ``resources[-1, 0]``, spans with a wanted attribute in ``resources[-1, 1]``),
    or -1: malformed, more spans or resources than rows,
    a group wire type, a time at or above 2**63 (the caller then decodes with protobuf)."""
    n = 0
    nres = 0
    found = 0  # spans with a wanted attribute
    want = len(bounds) > 1
    size = len(buf)
    max_rows = cols.shape[0]
    max_res = resources.shape[0] - 1
    i = 0
    while i < size:
        tag, i = _varint(buf, i, size)
        if i < 0:
            return -1
        if tag != 0x0A:  # resource_spans
            i = _skip(buf, tag & 7, i, size)
            if i < 0:
                return -1
            continue
        ln, i = _varint(buf, i, size)
        if i < 0 or i + ln > size:
            return -1
        rs_end = i + ln
        if nres >= max_res:
            return -1
        rs = nres
        nres += 1
        resources[rs, 0] = 0
        resources[rs, 1] = 0
        j = i
        while j < rs_end:
            t, j = _varint(buf, j, rs_end)
            if j < 0:
                return -1
            if t == 0x0A:  # resource
                m, j = _varint(buf, j, rs_end)
                if j < 0 or j + m > rs_end:
                    return -1
                resources[rs, 0] = j
                resources[rs, 1] = j + m
                j += m
            elif t == 0x12:  # scope_spans
                m, j = _varint(buf, j, rs_end)
                if j < 0 or j + m > rs_end:
                    return -1
                ss_end = j + m
                while j < ss_end:
                    t2, j = _varint(buf, j, ss_end)
                    if j < 0:
                        return -1
                    if t2 != 0x12:  # not a span (scope, schema_url)
                        j = _skip(buf, t2 & 7, j, ss_end)
                        if j < 0:
                            return -1
                        continue
                    sl, j = _varint(buf, j, ss_end)
                    if j < 0 or j + sl > ss_end:
                        return -1
                    if n >= max_rows:
                        return -1
                    s_end = j + sl
                    row = n
                    n += 1
                    cols[row, RS] = rs
                    cols[row, TRACE_AT] = -1
                    cols[row, SPAN_AT] = -1
                    cols[row, PARENT_AT] = -1
                    cols[row, NAME_AT] = 0
                    cols[row, NAME_LEN] = 0
                    cols[row, KIND] = 0
                    cols[row, START] = 0
                    cols[row, END] = 0
                    cols[row, STATUS] = 0
                    cols[row, SPAN_BEGIN] = j
                    cols[row, SPAN_END] = s_end
                    hashes[row, 0] = np.uint64(FNV_OFFSET)
                    for k in range(attrs.shape[1]):
                        attrs[row, k] = -1
                    for k in range(1, hashes.shape[1]):
                        hashes[row, k] = np.uint64(0)
                    # The wanted attributes are read as the span's fields are when its kind came first (every
                    # encoder writes the kind, field 6, before the attributes, field 9); else, or if the kind
                    # comes twice, by a second look once the span's last kind is known.
                    kind_seen = False
                    again = False
                    p = j
                    while p < s_end:
                        st = int(buf[p])  # tags and most lengths take one byte: read those inline
                        if st < 0x80:
                            p += 1
                        else:
                            st, p = _varint(buf, p, s_end)
                            if p < 0:
                                return -1
                        f, wt = st >> 3, st & 7
                        if wt == 2:
                            if p >= s_end:
                                return -1
                            fl = int(buf[p])
                            if fl < 0x80:
                                p += 1
                            else:
                                fl, p = _varint(buf, p, s_end)
                            if p < 0 or p + fl > s_end:
                                return -1
                            if f == 9:  # an attribute: the most frequent field
                                if want:
                                    if not kind_seen:
                                        again = True
                                    elif not again and attr_min_kind <= cols[row, KIND] <= attr_max_kind:
                                        # As encoders write it, a short key then the value and nothing else: a
                                        # key of a length no wanted key has ends the look, the value unread.
                                        # (Written out here: a call per attribute costs more than the check.)
                                        skip_kv = False
                                        if fl > 1 and buf[p] == 0x0A and buf[p + 1] < 0x80:
                                            short = buf[p + 1]
                                            skip_kv = True
                                            for k in range(len(bounds) - 1):
                                                if bounds[k + 1] - bounds[k] == short:
                                                    skip_kv = False
                                                    break
                                            v = p + 2 + short
                                            if skip_kv:
                                                skip_kv = False
                                                if v < p + fl and buf[v] == 0x12:
                                                    vn, v = _varint(buf, v + 1, p + fl)
                                                    skip_kv = v >= 0 and v + vn == p + fl
                                        if (not skip_kv
                                                and _attribute(buf, p, p + fl, keys, bounds, hashes, attrs, row) < 0):
                                            return -1
                                p += fl
                                continue
                            if f == 1 and fl == 16:
                                cols[row, TRACE_AT] = p
                            elif f == 2 and fl == 8:
                                cols[row, SPAN_AT] = p
                            elif f == 4 and fl == 8:
                                cols[row, PARENT_AT] = p
                            elif f == 5:
                                cols[row, NAME_AT] = p
                                cols[row, NAME_LEN] = fl
                                if hash_names:
                                    hashes[row, 0] = _fnv(buf, p, p + fl)
                            elif f == 15:  # status: its code is field 3
                                q = p
                                while q < p + fl:
                                    t3, q = _varint(buf, q, p + fl)
                                    if q < 0:
                                        return -1
                                    if t3 == 0x18:
                                        code, q = _varint(buf, q, p + fl)
                                        if q < 0:
                                            return -1
                                        cols[row, STATUS] = code
                                    else:
                                        q = _skip(buf, t3 & 7, q, p + fl)
                                        if q < 0:
                                            return -1
                            p += fl
                        elif wt == 0:
                            v, p = _varint(buf, p, s_end)
                            if p < 0:
                                return -1
                            if f == 6:
                                if kind_seen:
                                    again = True
                                kind_seen = True
                                cols[row, KIND] = v
                        elif wt == 1:
                            if p + 8 > s_end:
                                return -1
                            if f == 7 or f == 8:
                                if buf[p + 7] >= 0x80:
                                    return -1
                                cols[row, START if f == 7 else END] = _u64(buf, p)
                            p += 8
                        else:
                            p = _skip(buf, wt, p, s_end)
                            if p < 0:
                                return -1
                    kind = cols[row, KIND]
                    if want and again:
                        for k in range(attrs.shape[1]):
                            attrs[row, k] = -1
                        for k in range(1, hashes.shape[1]):
                            hashes[row, k] = np.uint64(0)
                        if (attr_min_kind <= kind <= attr_max_kind
                                and _attributes(buf, j, s_end, keys, bounds, hashes, attrs, row) < 0):
                            return -1
                    if want and attr_min_kind <= kind <= attr_max_kind:
                        for k in range(1, hashes.shape[1]):
                            if hashes[row, k] != 0:
                                found += 1
                                break
                    j = s_end
            else:
                j = _skip(buf, t & 7, j, rs_end)
                if j < 0:
                    return -1
        i = rs_end
    resources[max_res, 0] = nres
    resources[max_res, 1] = found
    return n
