"""Compiled kernels (numba) of the span-derived metrics: importing this module imports numba. Module-level
functions, so numba's on-disk cache serves every later process. See :mod:`pipelines.exposition.columns`."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from pipelines.exposition.layout import (
    END,
    KIND,
    NAME_AT,
    NAME_LEN,
    O_CLIENT,
    O_CONN,
    O_FAILED,
    O_SERVER,
    O_VIRTUAL,
    PARENT_AT,
    RS,
    SPAN_AT,
    SPAN_BEGIN,
    SPAN_END,
    START,
    STATUS,
    T_EXP,
    T_FLAGS,
    T_HOME,
    T_INTS,
    T_K0,
    T_K1,
    T_K2,
    T_LAT,
    T_NODES,
    TRACE_AT,
)

jit = numba.njit(cache=True, boundscheck=False, nogil=True)

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


@jit
def _varint(buf: Any, i: int, end: int) -> tuple[int, int]:
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
def _skip(buf: Any, wt: int, j: int, end: int) -> int:
    if wt == 0:
        _, j = _varint(buf, j, end)
        return j
    if wt == 1:
        return j + 8 if j + 8 <= end else -1
    if wt == 5:
        return j + 4 if j + 4 <= end else -1
    if wt == 2:
        ln, j = _varint(buf, j, end)
        if j < 0 or ln < 0 or j + ln > end:
            return -1
        return j + ln
    return -1


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
    (its FNV-1a hash, offset and length). Returns 0, or -1 when malformed."""
    nkeys = len(bounds) - 1
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
        kv_end = j + ln
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
        j = kv_end
        if key_at < 0 or val_at < 0:
            continue
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
                            if f == 9:  # an attribute: the most frequent field, not read here
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
                    if len(bounds) > 1 and attr_min_kind <= kind <= attr_max_kind:
                        if _attributes(buf, j, s_end, keys, bounds, hashes, attrs, row) < 0:
                            return -1
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


# -- the service graph's store of half-seen edges: an open-addressing table over arrays (linear probing) -----
# ``ti``: one 64-byte row per slot (see layout.T_*), ``tf`` the same memory as float64 (for T_EXP). The expiry
# queue is a ring (``qi``/``qf``, a power of two long) of the inserted keys in order of insertion: expiry reads
# from its head what has expired instead of scanning the table. ``state``: count, queue head, queue tail.

S_COUNT, S_HEAD, S_TAIL = 0, 1, 2
F_USED, F_SIDE, F_ROOT, F_FAILED, F_MARK = 1, 2, 16, 32, 64


@jit
def _home(k0: int, k1: int, k2: int) -> int:
    h = np.uint64(k0) ^ (np.uint64(k1) * np.uint64(0x9E3779B97F4A7C15))
    h ^= np.uint64(k2) * np.uint64(0xC2B2AE3D27D4EB4F)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return int(h >> np.uint64(1))


@jit
def _find(ti: Any, k0: int, k1: int, k2: int, home: int) -> int:
    mask = ti.shape[0] - 1
    i = home & mask
    while ti[i, T_FLAGS] & F_USED:
        if ti[i, T_K0] == k0 and ti[i, T_K1] == k1 and ti[i, T_K2] == k2:
            return int(i)
        i = (i + 1) & mask
    return int(-(i + 1))  # where it would go


@jit
def _delete(ti: Any, i: int) -> None:
    """Remove slot ``i``, shifting later entries of its probe run back (no tombstones)."""
    mask = ti.shape[0] - 1
    j = i
    while True:
        ti[i, T_FLAGS] = 0
        while True:
            j = (j + 1) & mask
            if not ti[j, T_FLAGS] & F_USED:
                return
            k = ti[j, T_HOME] & mask
            if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
                continue
            break
        for c in range(T_INTS):
            ti[i, c] = ti[j, c]
        i = j


@jit
def rehash(old: Any, new: Any) -> None:
    """Move every entry of the table ``old`` into the empty (larger) table ``new``."""
    mask = new.shape[0] - 1
    for s in range(old.shape[0]):
        if old[s, T_FLAGS] & F_USED:
            i = old[s, T_HOME] & mask
            while new[i, T_FLAGS] & F_USED:
                i = (i + 1) & mask
            for c in range(T_INTS):
                new[i, c] = old[s, c]


@jit
def _compact(ti: Any, tf: Any, qi: Any, qf: Any, state: Any) -> None:
    """Drop from the queue the keys no longer waiting (paired, or queued twice): at most ``count`` stay."""
    qmask = qi.shape[0] - 1
    head, tail = state[S_HEAD], state[S_TAIL]
    w = head
    for r in range(head, tail):
        q = r & qmask
        slot = _find(ti, qi[q, 0], qi[q, 1], qi[q, 2], qi[q, 3])
        if slot < 0 or ti[slot, T_FLAGS] & F_MARK or tf[slot, T_EXP] != qf[q]:
            continue
        ti[slot, T_FLAGS] |= F_MARK
        d = w & qmask
        for c in range(4):
            qi[d, c] = qi[q, c]
        qf[d] = qf[q]
        w += 1
    for r in range(head, w):
        q = r & qmask
        slot = _find(ti, qi[q, 0], qi[q, 1], qi[q, 2], qi[q, 3])
        ti[slot, T_FLAGS] &= ~F_MARK
    state[S_TAIL] = w


@jit
def pair(buf: Any, cols: Any, services: Any, peers: Any, dbs: Any, now: float, ttl: float, max_items: int,
         ti: Any, tf: Any, qi: Any, qf: Any, state: Any, out_i: Any, out_f: Any, dropped: Any) -> tuple[int, int]:
    """File every CLIENT, SERVER, PRODUCER and CONSUMER span of ``cols`` (see :func:`walk`) in the table
    ``ti``/``tf`` (``state[0]`` entries, at most ``max_items``; it must have room for as many more as there
    are rows): a span whose other side waits there completes an edge into ``out_i``/``out_f``; a CLIENT span
    with a database (``dbs[row]`` >= 0) completes one at once; any other waits ``ttl`` (its key appended to
    the expiry queue). ``services``: node code per span row; ``peers``: the code of its callee as named by its
    attributes (-1: none). A span that would be the ``max_items``-th waiting goes to ``dropped`` (service,
    side). Returns (edges completed, spans dropped)."""
    done = 0
    ndrop = 0
    qmask = qi.shape[0] - 1
    for r in range(cols.shape[0]):
        kind = cols[r, KIND]
        if kind < 2 or kind > 5:
            continue
        t_at = cols[r, TRACE_AT]
        if t_at < 0:
            continue
        client = kind == 3 or kind == 4
        ns = cols[r, END] - cols[r, START]
        lat = ns * 1e-9
        if lat < 0:
            lat = 0.0
        failed = 1 if cols[r, STATUS] == 2 else 0
        conn = 1 if kind == 4 or kind == 5 else 0
        svc = services[r]
        if kind == 3 and dbs[r] >= 0:
            out_i[done, O_CLIENT] = svc
            out_i[done, O_SERVER] = dbs[r]
            out_i[done, O_CONN] = 2
            out_i[done, O_FAILED] = failed
            out_i[done, O_VIRTUAL] = 0
            out_f[done, 0] = lat
            out_f[done, 1] = lat
            done += 1
            continue
        id_at = cols[r, SPAN_AT] if client else cols[r, PARENT_AT]
        if client and id_at < 0:
            continue
        k0 = _u64(buf, t_at)
        k1 = _u64(buf, t_at + 8)
        k2 = _u64(buf, id_at) if id_at >= 0 else 0
        home = _home(k0, k1, k2)
        slot = _find(ti, k0, k1, k2, home)
        side = 0 if client else 1
        if slot >= 0 and (ti[slot, T_FLAGS] & F_SIDE) != side * F_SIDE:
            flags = ti[slot, T_FLAGS]
            other_svc = ti[slot, T_NODES] & 0xFFFFFFFF
            other_lat = ti[slot, T_LAT] * 1e-9
            if other_lat < 0:
                other_lat = 0.0
            out_i[done, O_CLIENT] = svc if client else other_svc
            out_i[done, O_SERVER] = other_svc if client else svc
            out_i[done, O_CONN] = conn if conn else (flags >> 2) & 3
            out_i[done, O_FAILED] = failed | ((flags >> 5) & 1)
            out_i[done, O_VIRTUAL] = 0
            out_f[done, 0] = lat if client else other_lat
            out_f[done, 1] = other_lat if client else lat
            done += 1
            _delete(ti, slot)
            state[S_COUNT] -= 1
            continue
        if slot < 0:
            if state[S_COUNT] >= max_items:
                dropped[ndrop, 0] = svc
                dropped[ndrop, 1] = side
                dropped[ndrop, 2] = conn
                ndrop += 1
                continue
            slot = -slot - 1
            state[S_COUNT] += 1
            expires = now + ttl
            tf[slot, T_EXP] = expires
            if state[S_TAIL] - state[S_HEAD] > qmask:
                _compact(ti, tf, qi, qf, state)
            q = state[S_TAIL] & qmask
            qi[q, 0] = k0
            qi[q, 1] = k1
            qi[q, 2] = k2
            qi[q, 3] = home
            qf[q] = expires
            state[S_TAIL] += 1
        ti[slot, T_K0] = k0
        ti[slot, T_K1] = k1
        ti[slot, T_K2] = k2
        ti[slot, T_HOME] = home
        peer = peers[r] if client else -1
        ti[slot, T_NODES] = svc | ((peer + 1) << 32)
        ti[slot, T_LAT] = ns
        ti[slot, T_FLAGS] = (F_USED | side * F_SIDE | conn << 2 | (F_ROOT if (not client and id_at < 0) else 0)
                             | failed * F_FAILED)
    return done, ndrop


@jit
def expire(now: float, ti: Any, tf: Any, qi: Any, qf: Any, state: Any, out: Any, out_f: Any) -> int:
    """Remove the entries whose ``ttl`` has passed (read from the head of the expiry queue, which is in order
    of expiry) into ``out`` (side, service, peer, root, conn, failed; at most ``state[0]`` rows) and ``out_f``
    (latency); returns how many."""
    n = 0
    qmask = qi.shape[0] - 1
    head, tail = state[S_HEAD], state[S_TAIL]
    while head < tail and qf[head & qmask] <= now:
        q = head & qmask
        head += 1
        slot = _find(ti, qi[q, 0], qi[q, 1], qi[q, 2], qi[q, 3])
        if slot < 0 or tf[slot, T_EXP] != qf[q]:
            continue  # paired meanwhile (or queued twice)
        flags = ti[slot, T_FLAGS]
        nodes = ti[slot, T_NODES]
        out[n, 0] = (flags >> 1) & 1
        out[n, 1] = nodes & 0xFFFFFFFF
        out[n, 2] = (nodes >> 32) - 1
        out[n, 3] = (flags >> 4) & 1
        out[n, 4] = (flags >> 2) & 3
        out[n, 5] = (flags >> 5) & 1
        lat = ti[slot, T_LAT] * 1e-9
        out_f[n] = lat if lat >= 0 else 0.0
        n += 1
        _delete(ti, slot)
        state[S_COUNT] -= 1
    state[S_HEAD] = head
    return n


# -- span metrics: spans grouped by label set within a request ---------------------------------------------


@jit
def aggregate(cols: Any, hashes: Any, codes: Any, parts: int, bounds: Any, to_unit: float, table: Any,
              keys: Any, first: Any, calls: Any, hist: Any, sums: Any, first_bucket: Any, first_value: Any) -> int:
    """Group the spans of ``cols`` by label set: a 64-bit key of the service code (``codes`` per resource),
    kind and status (the bits of ``parts`` say which count: 1 service, 2 name, 4 kind, 8 status), xor the
    name's hash. Per group (in order of first appearance): its key, first span row, span count, duration
    histogram over ``bounds`` (``le``; durations are nanoseconds times ``to_unit``, at least 0), sum, and the
    first span's bucket and duration. ``table`` (a power of two, at least twice the rows) is scratch. Returns
    the number of groups."""
    mask = table.shape[0] - 1
    for i in range(table.shape[0]):
        table[i] = -1
    nb = hist.shape[1]
    nbounds = bounds.shape[0]
    k = 0
    mix = np.uint64(0x9E3779B97F4A7C15)
    for r in range(cols.shape[0]):
        part = np.uint64(0)
        if parts & 1:
            part |= np.uint64(codes[cols[r, RS]]) << np.uint64(8)
        if parts & 4:
            part |= np.uint64(cols[r, KIND] & 0xF) << np.uint64(4)
        if parts & 8:
            part |= np.uint64(cols[r, STATUS] & 0xF)
        key = part * mix
        if parts & 2:
            key ^= hashes[r, 0]
        h = key ^ (key >> np.uint64(29))
        slot = np.int64(h & np.uint64(mask))
        while True:
            g = table[slot]
            if g < 0:
                g = k
                k += 1
                table[slot] = g
                keys[g] = key
                first[g] = r
                calls[g] = 0
                sums[g] = 0.0
                for b in range(nb):
                    hist[g, b] = 0
                break
            if keys[g] == key:
                break
            slot = (slot + 1) & mask
        d = (cols[r, END] - cols[r, START]) * to_unit
        if d < 0:
            d = 0.0
        lo, hi = 0, nbounds
        while lo < hi:  # the first bound >= d
            mid = (lo + hi) >> 1
            if bounds[mid] < d:
                lo = mid + 1
            else:
                hi = mid
        calls[g] += 1
        hist[g, lo] += 1
        sums[g] += d
        if first[g] == r:
            first_bucket[g] = lo
            first_value[g] = d
    return k
