"""Compiled kernels (numba) of the span-derived metrics: importing this module imports numba. Module-level
functions, so numba's on-disk cache serves every later process. See :mod:`pipelines.exposition.columns`."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from collector.wire import (
    END,
    KIND,
    PARENT_AT,
    RS,
    SPAN_AT,
    START,
    STATUS,
    TRACE_AT,
)
from pipelines.exposition.layout import (
    O_CLIENT,
    O_CONN,
    O_FAILED,
    O_SERVER,
    O_VIRTUAL,
    T_EXP,
    T_FLAGS,
    T_HOME,
    T_INTS,
    T_K0,
    T_K1,
    T_K2,
    T_LAT,
    T_NODES,
)

jit = numba.njit(cache=True, boundscheck=False, nogil=True)

@jit
def _u64(buf: Any, p: int) -> int:
    v = 0
    for k in range(7, -1, -1):
        v = (v << 8) | int(buf[p + k])
    return v


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
    # First every key's home slot, each row read once (a load per span, independent of one another, so the
    # cache misses of the random slots overlap instead of coming one after the other in the loop below).
    n = cols.shape[0]
    homes = np.full(n, -1, dtype=np.int64)
    keys = np.empty((n, 3), dtype=np.int64)
    mask = ti.shape[0] - 1
    touched = 0
    for r in range(n):
        kind = cols[r, KIND]
        t_at = cols[r, TRACE_AT]
        if kind < 2 or kind > 5 or t_at < 0:
            continue
        id_at = cols[r, SPAN_AT] if kind == 3 or kind == 4 else cols[r, PARENT_AT]
        k0 = _u64(buf, t_at)
        k1 = _u64(buf, t_at + 8)
        k2 = _u64(buf, id_at) if id_at >= 0 else 0
        keys[r, 0] = k0
        keys[r, 1] = k1
        keys[r, 2] = k2
        home = _home(k0, k1, k2)
        homes[r] = home
        touched += ti[home & mask, T_FLAGS]
    for r in range(n):
        home = homes[r]
        if home < 0:
            continue
        kind = cols[r, KIND]
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
        k0, k1, k2 = keys[r, 0], keys[r, 1], keys[r, 2]
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
    if touched == -1:  # (never: keeps the loads above)
        ndrop = -1
    return done, ndrop


@jit
def expire(now: float, user: int, ti: Any, tf: Any, qi: Any, qf: Any, state: Any, out_i: Any, out_f: Any,
           unpaired: Any) -> tuple[int, int]:
    """Remove the entries whose ``ttl`` has passed (read from the head of the expiry queue, which is in order
    of expiry). A client side that names its callee (a peer) or a root server span (called by ``user``)
    becomes a completed edge to or from a virtual node in ``out_i``/``out_f`` (as :func:`pair`'s; at most
    ``state[0]`` rows); any other is counted in ``unpaired[(service * 2 + side) * 4 + conn]`` (side 0 client,
    1 server). Returns (virtual edges, entries expired)."""
    n = 0
    expired = 0
    qmask = qi.shape[0] - 1
    mask = ti.shape[0] - 1
    head, tail = state[S_HEAD], state[S_TAIL]
    ahead = head  # rows up to here were read ahead: by 64 at a time, so that their cache misses overlap
    touched = 0
    while head < tail and qf[head & qmask] <= now:
        if head == ahead:
            while ahead < tail and ahead - head < 64:
                touched += ti[qi[ahead & qmask, 3] & mask, T_FLAGS]
                ahead += 1
        q = head & qmask
        head += 1
        slot = _find(ti, qi[q, 0], qi[q, 1], qi[q, 2], qi[q, 3])
        if slot < 0 or tf[slot, T_EXP] != qf[q]:
            continue  # paired meanwhile (or queued twice)
        flags = ti[slot, T_FLAGS]
        nodes = ti[slot, T_NODES]
        side = (flags >> 1) & 1
        service = nodes & 0xFFFFFFFF
        peer = (nodes >> 32) - 1
        lat = ti[slot, T_LAT] * 1e-9
        if lat < 0:
            lat = 0.0
        if (side == 0 and peer >= 0) or (side == 1 and flags & F_ROOT):
            out_i[n, O_CLIENT] = service if side == 0 else user
            out_i[n, O_SERVER] = peer if side == 0 else service
            out_i[n, O_CONN] = 3
            out_i[n, O_FAILED] = (flags >> 5) & 1
            out_i[n, O_VIRTUAL] = 1 if side == 0 else 2
            out_f[n, 0] = lat if side == 0 else -1.0
            out_f[n, 1] = -1.0 if side == 0 else lat
            n += 1
        else:
            unpaired[(service * 2 + side) * 4 + ((flags >> 2) & 3)] += 1
        expired += 1
        _delete(ti, slot)
        state[S_COUNT] -= 1
    state[S_HEAD] = head
    if touched == -1:  # (never: keeps the loads ahead)
        n = -1
    return n, expired


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
