"""Every span of a request read into columns in one compiled pass (numba, the ``jit`` extra): what the
span-derived metrics need without a Python object per span. The walk itself is the wire package's
(:func:`collector.wire.load_column_walk`); this module keeps its arrays and names the services.

:class:`SpanWalk` reads a request's bytes into a :class:`SpanColumns`: per span its resource, where its ids
and name are, its kind, times and status code, the FNV-1a hash of its name and, for spans of the kinds
asked for, the wanted attributes' string values (hash and place). Names and values become Python strings
only where a caller meets a new hash. The walk is used when the service loaded the compiled wire walk
(numba installed, ``TRACETRIAGE_JIT`` not ``0``); otherwise, or for a request it does not take (malformed,
unusual encodings), :meth:`SpanWalk.columns` returns None and the caller decodes with protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collector.wire import NCOLS, load_column_walk
from pipelines.exposition.layout import O_INTS, Q_INTS, T_INTS
from pipelines.exposition.spans import service_name

MAX_RESOURCES = 4096  # resource bytes -> service name, remembered (cleared when full)


def load() -> bool:
    """Whether the compiled column walk (:func:`collector.wire.load_column_walk`) is available (compiling
    or loading it from numba's cache on first use). Safe to call often."""
    return load_column_walk() is not None


def compile_all() -> bool:
    """Compile (or load from numba's cache) every kernel of the span-derived metrics now: the walk, the
    service graph's store and the span metrics' grouping. False when the compiled walk is off."""
    if not load():
        return False
    from pipelines.exposition import _kernels as k

    i64 = np.int64
    none = np.zeros(0, dtype=i64)
    cols = np.zeros((0, NCOLS), dtype=i64)
    table_i = np.zeros((1, T_INTS), dtype=i64)
    table_f = table_i.view(np.float64)
    queue_i, queue_f, state = np.zeros((1, Q_INTS), dtype=i64), np.zeros(1), np.zeros(3, dtype=i64)
    k.pair(np.frombuffer(bytes(1), dtype=np.uint8), cols, none, none, none, 0.0, 1.0, 1, table_i, table_f,
           queue_i, queue_f, state, np.zeros((0, O_INTS), dtype=i64), np.zeros((0, 2)), np.zeros((0, 3), dtype=i64))
    k.expire(0.0, 0, table_i, table_f, queue_i, queue_f, state, np.zeros((1, O_INTS), dtype=i64), np.zeros((1, 2)),
             np.zeros(8, dtype=i64))
    k.rehash(table_i, np.zeros((2, T_INTS), dtype=i64))
    k.aggregate(cols, np.zeros((0, 1), dtype=np.uint64), np.zeros(1, dtype=i64), 15, np.zeros(1), 1.0,
                np.zeros(2, dtype=i64), np.zeros(1, dtype=np.uint64), np.zeros(1, dtype=i64), np.zeros(1, dtype=i64),
                np.zeros((1, 2), dtype=i64), np.zeros(1), np.zeros(1, dtype=i64), np.zeros(1))
    return True


class SpanColumns:
    """The spans of one request as columns (``n`` rows); see the module docstring."""

    __slots__ = ("attrs", "cols", "data", "hashes", "n", "services", "with_attributes")

    def __init__(self, data: bytes, cols: np.ndarray, hashes: np.ndarray, attrs: np.ndarray,
                 services: list[str], n: int, with_attributes: int = 0) -> None:
        self.with_attributes = with_attributes  # spans with one of the wanted attributes
        self.data = data
        self.cols = cols
        self.hashes = hashes
        self.attrs = attrs
        self.services = services  # per ResourceSpans index: service.name ("" when absent)
        self.n = n

    def text(self, at: int, length: int) -> str:
        return self.data[at:at + length].decode("utf-8", "replace")


class SpanWalk:
    """Reads requests into :class:`SpanColumns`, with the string values of ``attribute_keys`` for spans whose
    kind is between ``min_kind`` and ``max_kind``; without ``hash_names`` the name hashes are not computed."""

    def __init__(self, attribute_keys: Sequence[str] = (), min_kind: int = 0, max_kind: int = -1,
                 hash_names: bool = True) -> None:
        self._hash_names = hash_names
        encoded = [k.encode() for k in attribute_keys]
        # (writable arrays, as load() compiles for: another array type would compile again on first use)
        self._keys = np.array(bytearray(b"".join(encoded) or b"\0"), dtype=np.uint8)
        self._bounds = np.cumsum([0, *(len(k) for k in encoded)]).astype(np.int64)
        self._nkeys = len(encoded)
        self._min_kind, self._max_kind = min_kind, max_kind
        self._services: dict[bytes, str] = {}
        self._rows = 0
        self._cols = self._hashes = self._attrs = self._resources = np.empty((0, 0), dtype=np.int64)

    @staticmethod
    def load() -> bool:
        return load()

    def columns(self, data: bytes, span_count: int) -> SpanColumns | None:
        """The spans of the request ``data`` (``span_count`` of them, at most) as columns, valid until the next
        call (the arrays are reused); None when the compiled walk is off or does not take the request."""
        walk = load_column_walk()
        if walk is None:
            return None
        rows = max(span_count, 1)
        if rows > self._rows:  # the arrays are kept for the next request (grown as needed)
            self._rows = rows = max(rows, 2 * self._rows)
            self._cols = np.empty((rows, NCOLS), dtype=np.int64)
            self._hashes = np.empty((rows, 1 + self._nkeys), dtype=np.uint64)
            self._attrs = np.empty((rows, 2 * self._nkeys), dtype=np.int64)
            self._resources = np.empty((min(rows, MAX_RESOURCES) + 1, 2), dtype=np.int64)
        cols, hashes, attrs, resources = self._cols, self._hashes, self._attrs, self._resources
        buf = np.frombuffer(data, dtype=np.uint8)
        n = walk(buf, cols, hashes, attrs, resources, self._keys, self._bounds, self._min_kind, self._max_kind,
                 self._hash_names)
        if n < 0:
            return None
        nres = int(resources[-1, 0])
        cache = self._services
        services = []
        for a, b in resources[:nres].tolist():
            raw = data[a:b]
            name = cache.get(raw)
            if name is None:
                if len(cache) >= MAX_RESOURCES:
                    cache.clear()
                name = cache[raw] = service_name(Resource.FromString(raw).attributes)
            services.append(name)
        return SpanColumns(data, cols[:n], hashes[:n], attrs[:n], services, n, int(resources[-1, 1]))
