"""The ``servicegraph`` processor: who calls whom, from pairs of CLIENT/SERVER (and PRODUCER/CONSUMER) spans
of every trace, as the contrib connector's series, served for Prometheus at its own ``endpoint``.

A client span and the server span whose parent it is make one edge (``client`` -> ``server``); they meet
in the :class:`EdgeStore` under (trace id, client span id). A client span with ``database_name_attribute``
is a complete edge at once (``connection_type="database"``). An edge still half-seen after ``store.ttl``
expires: a client side that names its callee (``virtual_node_peer_attributes``) becomes an edge to a
virtual node, as does a root server span (from ``user``); any other is counted in
``traces_service_graph_unpaired_spans_total``. It passes each batch on unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from time import thread_time
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.metrics_core import Metric

from collector import Capabilities, ConsumerError, Host, Settings, SpanBatch, TracesConsumer
from collector.wire import RS
from pipelines.exposition import (
    Histogram,
    MetricsListener,
    attribute_text,
    bucket_labels,
    serve,
    service_name,
    span_stage_cpu_counter,
    stop_serving,
)
from pipelines.exposition.columns import SpanColumns, SpanWalk, compile_all
from pipelines.exposition.layout import O_CLIENT, O_CONN, O_FAILED, O_INTS, O_SERVER, O_VIRTUAL, Q_INTS, T_INTS
from pipelines.servicegraph.config import Config
from pipelines.servicegraph.store import Edge, EdgeStore

PREFIX = "traces_service_graph_"
_SERVER, _CLIENT, _PRODUCER, _CONSUMER = 2, 3, 4, 5
_ERROR = 2
MESSAGING, DATABASE, VIRTUAL = "messaging_system", "database", "virtual_node"
_CAPABILITIES = Capabilities()


HOLD_EDGES = 16384  # completed edges held on the compiled path before they are counted (see _hold)
MAX_NODES = 1 << 20  # node names (services, databases, peers) given a code on the compiled path
_CONNECTIONS = ("", MESSAGING, DATABASE, VIRTUAL)
_VIRTUAL_SIDES = ("", "server", "client")


def _table(rows: int) -> np.ndarray:
    """A zeroed store table of ``rows`` 64-byte rows, each row on one cache line."""
    flat = np.zeros(rows * T_INTS + 8, dtype=np.int64)
    skip = (-flat.ctypes.data % 64) // 8
    return flat[skip:skip + rows * T_INTS].reshape(rows, T_INTS)


class _FastStore:
    """The compiled store of half-seen edges: a table of 64-byte rows, grown (four times as many rows a
    time) to keep at most half of it used, up to twice ``max_items`` slots (a power of two), and a queue of
    the waiting keys in order of expiry."""

    INITIAL_ROWS = 1 << 15  # 2 MB; smaller when max_items is
    GROWTH = 4  # (each growth moves every entry into fresh memory: 4x moves a third of what doubling does)

    def __init__(self, max_items: int) -> None:
        from pipelines.exposition import _kernels as k  # (imports numba: only once the walk is loaded)

        self.max_rows = 1 << max(4, (2 * max_items - 1).bit_length())
        self._set(_table(min(self.INITIAL_ROWS, self.max_rows)))
        self.qi = np.zeros((self.max_rows, Q_INTS), dtype=np.int64)
        self.qf = np.zeros(self.max_rows, dtype=np.float64)
        self.state = np.zeros(3, dtype=np.int64)  # waiting, queue head, queue tail
        self._out_i, self._out_f = np.empty((0, O_INTS), dtype=np.int64), np.empty((0, 2))
        self._unpaired = np.zeros(0, dtype=np.int64)  # per (node code, side, connection): counts of one expiry
        self.pair = k.pair
        self.expire = k.expire
        self._rehash = k.rehash

    def _set(self, ti: np.ndarray) -> None:
        self.ti = ti
        self.tf = ti.view(np.float64)  # (the same memory: a row's expiry time, T_EXP)

    @property
    def count(self) -> int:
        return int(self.state[0])

    def expired_rows(self, rows: int, nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Room for ``rows`` virtual edges and the unpaired counts of ``nodes`` node codes, kept from one
        expiry to the next (new arrays each time would cost their page faults again)."""
        if len(self._out_f) < rows:
            size = max(rows, 2 * len(self._out_f))
            self._out_i, self._out_f = np.empty((size, O_INTS), dtype=np.int64), np.empty((size, 2))
        if len(self._unpaired) < 8 * nodes:
            self._unpaired = np.zeros(8 * max(nodes, len(self._unpaired) // 4), dtype=np.int64)
        return self._out_i, self._out_f, self._unpaired

    def room_for(self, spans: int) -> None:
        """Grow the table so that ``spans`` more entries keep it at most half used."""
        rows = len(self.ti)
        want = min(self.count + spans, self.max_rows // 2)
        if 2 * want <= rows:
            return
        while 2 * want > rows:
            rows *= self.GROWTH
        rows = min(rows, self.max_rows)
        new = _table(rows)
        self._rehash(self.ti, new)
        self._set(new)


class EdgeSeries:
    """The series of one label set (client, server, connection type, dimensions)."""

    __slots__ = ("client_seconds", "failed", "last_seen", "server_seconds", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.total = 0
        self.failed = 0
        self.server_seconds = Histogram(bounds)
        self.client_seconds = Histogram(bounds)
        self.last_seen = 0.0  # unix time of the last request


class ServiceGraphProcessor:
    """See the module docstring."""

    def __init__(self, settings: Settings, config: Config, next_consumer: TracesConsumer) -> None:
        self._settings = settings
        self.config = config
        self._next = next_consumer
        self._label = label = str(settings.id)
        self._logger = settings.logger
        self._bounds = tuple(float(b) for b in config.latency_histogram_buckets)
        self._le = bucket_labels(self._bounds)
        self._store = EdgeStore(config.store.ttl, config.store.max_items)
        self._dims = tuple(config.dimensions)
        self._peer_attributes = tuple(config.virtual_node_peer_attributes)
        self._wanted = frozenset((*self._peer_attributes, config.database_name_attribute, *self._dims))
        self._label_names = ("client", "server", "connection_type",
                             *(f"client_{d}".replace(".", "_") for d in self._dims),
                             *(f"server_{d}".replace(".", "_") for d in self._dims))
        # (client, server, connection_type, client dims..., server dims..., virtual_node) -> series
        self._series: dict[tuple[str, ...], EdgeSeries] = {}
        self._unpaired: dict[tuple[str, str, str], int] = {}
        self._dropped: dict[tuple[str, str, str], int] = {}
        t = settings.telemetry
        lab = ("processor",)
        self._m_waiting = t.gauge("tracetriage_servicegraph_waiting_edges",
                                  "Half-seen edges waiting for their other side.", lab).labels(label)
        self._m_expired = t.counter("tracetriage_servicegraph_expired_edges",
                                    "Half-seen edges that expired after store.ttl.", lab).labels(label)
        self._m_dropped = t.counter("tracetriage_servicegraph_dropped_spans",
                                    "Spans not paired because store.max_items edges were waiting.", lab).labels(label)
        self._m_series_over = t.counter("tracetriage_servicegraph_series_over_limit",
                                        "Edges not counted because max_series label sets exist.", lab).labels(label)
        self._m_malformed = t.counter("tracetriage_servicegraph_malformed_batches",
                                      "Batches that could not be decoded (refused).", lab).labels(label)
        self._m_cpu = span_stage_cpu_counter(t).labels(label)
        self.watching_since = time.time()  # reset at start: since when edges are observed
        # The compiled path (numba; not with dimensions): spans read into columns, half-seen edges in a table.
        self._walk = SpanWalk((config.database_name_attribute, *self._peer_attributes), _CLIENT, _PRODUCER,
                              hash_names=False)  # (edges are not per span name)
        # (compiled, or loaded from numba's cache, now while the service builds: not on the first request)
        self._fast = _FastStore(config.store.max_items) if not self._dims and compile_all() else None
        self._bounds_array = np.array(self._bounds, dtype=np.float64)
        self._names: list[str] = ["unknown_node"]
        self._node_codes: dict[str, int] = {"unknown_node": 0}
        self._by_value: dict[int, int] = {}
        self._held_i = np.empty((HOLD_EDGES, O_INTS), dtype=np.int64)  # completed edges not yet counted
        self._held_f = np.empty((HOLD_EDGES, 2), dtype=np.float64)
        self._held = 0
        self._m_nodes_over = t.counter("tracetriage_servicegraph_nodes_over_limit",
                                       "Node names past the limit, counted as unknown_node.", lab).labels(label)
        self._host: Host | None = None
        self._listener: MetricsListener | None = None
        self._expirer: asyncio.Task[None] | None = None

    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    @property
    def endpoint_port(self) -> int | None:
        return self._listener.port if self._listener is not None else None

    @property
    def waiting_edges(self) -> int:
        return len(self._store) + (self._fast.count if self._fast is not None else 0)

    def observed_edges(self) -> dict[tuple[str, str, str], float]:
        """(client, server, connection_type) -> unix time last seen, for every edge counted so far."""
        self._flush()
        out: dict[tuple[str, str, str], float] = {}
        for key, s in self._series.items():
            k3 = (key[0], key[1], key[2])
            out[k3] = max(out.get(k3, 0.0), s.last_seen)
        return out

    # -- the span path ---------------------------------------------------------------------------------

    async def consume_traces(self, batch: SpanBatch) -> None:
        t0 = thread_time()
        try:
            data = batch.to_bytes()
            columns = self._walk.columns(data, batch.span_count) if self._fast is not None else None
            if columns is not None:
                self.record_columns(columns)
            else:
                self.record(ExportTraceServiceRequest.FromString(data))
        except DecodeError as e:
            self._m_malformed.inc()
            batch.release()
            raise ConsumerError(f"{self._label}: malformed trace data: {e}") from e
        finally:
            self._m_cpu.inc(thread_time() - t0)
        await self._next.consume_traces(batch)

    def record(self, request: ExportTraceServiceRequest, now: float | None = None) -> None:
        """File every CLIENT, SERVER, PRODUCER and CONSUMER span of ``request``."""
        now = time.monotonic() if now is None else now
        store = self._store
        dims = self._dims
        for rs in request.resource_spans:
            resource_attributes = rs.resource.attributes
            service = ""
            resource_wanted: dict[str, str] | None = None
            for ss in rs.scope_spans:
                for span in ss.spans:
                    kind = span.kind
                    if kind < _SERVER:
                        continue
                    if not service:
                        service = service_name(resource_attributes) or "unknown_service"
                    latency = (span.end_time_unix_nano - span.start_time_unix_nano) * 1e-9
                    if latency < 0:
                        latency = 0.0
                    failed = span.status.code == _ERROR
                    if kind in (_CLIENT, _PRODUCER):
                        if resource_wanted is None:
                            resource_wanted = self._pick(resource_attributes)
                        attrs = self._pick(span.attributes)
                        for k, v in resource_wanted.items():
                            attrs.setdefault(k, v)
                        db = attrs.get(self.config.database_name_attribute) if kind == _CLIENT else None
                        connection = MESSAGING if kind == _PRODUCER else ""
                        edge = store.upsert(span.trace_id + span.span_id, DATABASE if db else connection, now)
                        if edge is None:
                            self._drop(service, "", connection)
                            continue
                        edge.client = service
                        edge.client_latency = latency
                        edge.failed |= failed
                        if dims:
                            edge.client_dims = tuple(attrs.get(d, "") for d in dims)
                        if db:
                            edge.connection_type = DATABASE
                            edge.server = db
                            edge.server_latency = latency
                        else:
                            edge.peer = next((attrs[a] for a in self._peer_attributes if attrs.get(a)), "")
                    else:
                        parent = span.parent_span_id
                        connection = MESSAGING if kind == _CONSUMER else ""
                        edge = store.upsert(span.trace_id + parent, connection, now)
                        if edge is None:
                            self._drop("", service, connection)
                            continue
                        edge.server = service
                        edge.server_latency = latency
                        edge.server_root = not parent
                        edge.failed |= failed
                        if dims:
                            if resource_wanted is None:
                                resource_wanted = self._pick(resource_attributes)
                            attrs = self._pick(span.attributes)
                            edge.server_dims = tuple(attrs.get(d, resource_wanted.get(d, "")) for d in dims)
                    if edge.client and edge.server:
                        store.remove(span.trace_id + (span.span_id if kind in (_CLIENT, _PRODUCER) else parent))
                        self._complete(edge)
        self._m_waiting.set(len(store))

    # -- the compiled path ------------------------------------------------------------------------------

    def record_columns(self, c: SpanColumns, now: float | None = None) -> None:
        """File the spans of a request read into columns in the compiled store; Python works per edge label
        set, not per span."""
        fast = self._fast
        assert fast is not None
        if c.n == 0:
            return
        now = time.monotonic() if now is None else now
        cols = c.cols
        codes = np.array([self._node(s or "unknown_service") for s in c.services], dtype=np.int64)
        services = codes[cols[:, RS]]
        peers = np.full(c.n, -1, dtype=np.int64)
        if c.with_attributes:
            dbs = self._value_codes(c, 0)
            for k in range(len(self._peer_attributes), 0, -1):  # the first attribute present wins
                found = self._value_codes(c, k)
                np.copyto(peers, found, where=found >= 0)
        else:
            dbs = peers
        out_i = np.empty((c.n, O_INTS), dtype=np.int64)
        out_f = np.empty((c.n, 2), dtype=np.float64)
        dropped = np.empty((c.n, 3), dtype=np.int64)
        fast.room_for(c.n)
        done, ndrop = fast.pair(np.frombuffer(c.data, dtype=np.uint8), cols, services, peers, dbs, now,
                                float(self.config.store.ttl), self.config.store.max_items, fast.ti, fast.tf,
                                fast.qi, fast.qf, fast.state, out_i, out_f, dropped)
        if done:
            self._hold(out_i[:done], out_f[:done])
        if ndrop:  # (a full store drops many at a time: counted per label set)
            rows = dropped[:ndrop]
            keys, counts = np.unique((rows[:, 0] * 2 + rows[:, 1]) * 4 + rows[:, 2], return_counts=True)
            for key3, count in self._by_side(keys, counts):
                self._drop(*key3, count)
        self._m_waiting.set(fast.count)

    def _hold(self, oi: np.ndarray, of: np.ndarray) -> None:
        """Keep completed edges to count with later ones (counting costs per call, not per edge: a request's
        few hundred edges at a time would pay it every request); counted before anyone reads the series."""
        n = self._held
        if n + len(oi) > len(self._held_f):
            self._flush()
            n = 0
            if len(oi) > len(self._held_f):
                self._apply(oi, of)
                return
        self._held_i[n:n + len(oi)] = oi
        self._held_f[n:n + len(oi)] = of
        self._held = n + len(oi)

    def _flush(self) -> None:
        """Count the completed edges held by :meth:`_hold`."""
        if self._held:
            n, self._held = self._held, 0
            self._apply(self._held_i[:n], self._held_f[:n])

    def _by_side(self, keys: np.ndarray, counts: np.ndarray) -> list[tuple[tuple[str, str, str], int]]:
        """Counts of half-seen edges by ``(node code * 2 + side) * 4 + connection code`` (side 0 client, 1
        server) as (client, server, connection_type), the side not seen empty."""
        out = []
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            name = self._names[key >> 3]
            server = (key >> 2) & 1
            out.append(((name if not server else "", name if server else "", _CONNECTIONS[key & 3]), count))
        return out

    def _value_codes(self, c: SpanColumns, k: int) -> np.ndarray:
        """Per span row, the node code of the string value of wanted attribute ``k`` (-1: absent)."""
        hashes = c.hashes[:, 1 + k]
        out = np.full(c.n, -1, dtype=np.int64)
        present = np.flatnonzero(hashes)
        if present.size == 0:
            return out
        unique, first, inverse = np.unique(hashes[present], return_index=True, return_inverse=True)
        cache = self._by_value
        codes = []
        for h, f in zip(unique.tolist(), first.tolist(), strict=True):
            code = cache.get(h)
            if code is None:
                row = int(present[f])
                code = self._node(c.text(int(c.attrs[row, 2 * k]), int(c.attrs[row, 2 * k + 1])))
                if len(cache) >= MAX_NODES:
                    cache.clear()
                cache[h] = code
            codes.append(code)
        out[present] = np.array(codes, dtype=np.int64)[inverse]
        return out

    def _node(self, name: str) -> int:
        """A node name's code (names past MAX_NODES share the code of ``unknown_node``, counted)."""
        code = self._node_codes.get(name)
        if code is None:
            if len(self._names) >= MAX_NODES:
                self._m_nodes_over.inc()
                return self._node_codes["unknown_node"]
            code = self._node_codes[name] = len(self._names)
            self._names.append(name)
        return code

    def _apply(self, oi: np.ndarray, of: np.ndarray) -> None:
        """Count completed edges (rows of client, server, conn, failed, virtual; client and server latency)."""
        key = ((oi[:, O_CLIENT] * MAX_NODES + oi[:, O_SERVER]) * 4 + oi[:, O_CONN]) * 3 + oi[:, O_VIRTUAL]
        unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        k = len(unique)
        totals = np.bincount(inverse, minlength=k).tolist()
        failed = np.bincount(inverse, weights=oi[:, O_FAILED], minlength=k).tolist()
        nb = len(self._bounds) + 1
        hists = []
        for col in (1, 0):  # server, client
            lat = of[:, col]
            seen = lat >= 0
            b = np.searchsorted(self._bounds_array, lat[seen], side="left")
            counts = np.bincount(inverse[seen] * nb + b, minlength=k * nb).reshape(k, nb)
            sums = np.bincount(inverse[seen], weights=lat[seen], minlength=k).tolist()
            ns = np.bincount(inverse[seen], minlength=k).tolist()
            hists.append((counts, sums, ns))
        extra = self.config.virtual_node_extra_label
        wall = time.time()
        names = self._names
        for i, f in enumerate(first.tolist()):
            client, server, conn, _, virtual = oi[f].tolist()
            label: tuple[str, ...] = (names[client], names[server], _CONNECTIONS[conn])
            if self._dims:
                label += ("",) * (2 * len(self._dims))
            if extra:
                label += (_VIRTUAL_SIDES[virtual],)
            series = self._series.get(label)
            if series is None:
                if len(self._series) >= self.config.max_series:
                    self._m_series_over.inc(totals[i])
                    continue
                series = self._series[label] = EdgeSeries(self._bounds)
            series.total += totals[i]
            series.failed += int(failed[i])
            (sc, ss, sn), (cc, cs, cn) = hists
            if sn[i]:
                series.server_seconds.add(sc[i], ss[i], sn[i])
            if cn[i]:
                series.client_seconds.add(cc[i], cs[i], cn[i])
            series.last_seen = wall

    def _expire_columns(self, now: float) -> None:
        fast = self._fast
        assert fast is not None
        waiting = fast.count
        if waiting == 0:
            return
        user = self._node("user")
        out_i, out_f, unpaired = fast.expired_rows(waiting, len(self._names))
        n, expired = fast.expire(now, user, fast.ti, fast.tf, fast.qi, fast.qf, fast.state, out_i, out_f, unpaired)
        if expired == 0:
            return
        self._m_expired.inc(expired)
        if n:
            self._apply(out_i[:n], out_f[:n])
        keys = np.flatnonzero(unpaired)
        if keys.size:
            for key3, count in self._by_side(keys, unpaired[keys]):
                self._unpaired[key3] = self._unpaired.get(key3, 0) + count
            unpaired[keys] = 0
        self._m_waiting.set(fast.count)

    def _pick(self, attributes: Any) -> dict[str, str]:
        wanted = self._wanted
        return {kv.key: attribute_text(kv.value) for kv in attributes if kv.key in wanted}

    def _complete(self, edge: Edge, virtual: str = "") -> None:
        dims = self._dims
        key: tuple[str, ...] = (edge.client, edge.server, edge.connection_type)
        if dims:
            key += (edge.client_dims or ("",) * len(dims)) + (edge.server_dims or ("",) * len(dims))
        if self.config.virtual_node_extra_label:
            key += (virtual,)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= self.config.max_series:
                self._m_series_over.inc()
                return
            series = self._series[key] = EdgeSeries(self._bounds)
        series.total += 1
        if edge.failed:
            series.failed += 1
        if edge.server_latency >= 0:
            series.server_seconds.observe(edge.server_latency)
        if edge.client_latency >= 0:
            series.client_seconds.observe(edge.client_latency)
        series.last_seen = time.time()

    def _drop(self, client: str, server: str, connection: str, count: int = 1) -> None:
        self._m_dropped.inc(count)
        key = (client, server, connection)
        self._dropped[key] = self._dropped.get(key, 0) + count

    def expire(self, now: float | None = None) -> None:
        """Settle the edges whose ``store.ttl`` has passed: virtual nodes where the client names its callee
        (or the server span is a root), otherwise unpaired."""
        now = time.monotonic() if now is None else now
        self._settle(self._store.expired(now))
        if self._fast is not None:
            self._expire_columns(now)

    def _settle(self, edges: list[Edge]) -> None:
        for edge in edges:
            self._m_expired.inc()
            if edge.client and edge.peer:
                edge.server = edge.peer
                edge.connection_type = VIRTUAL
                self._complete(edge, "server")
            elif edge.server and edge.server_root and not edge.client:
                edge.client = "user"
                edge.connection_type = VIRTUAL
                self._complete(edge, "client")
            else:
                key = (edge.client, edge.server, edge.connection_type)
                self._unpaired[key] = self._unpaired.get(key, 0) + 1
        self._m_waiting.set(len(self._store))

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.store_expiration_loop)
            t0 = thread_time()
            self.expire()
            self._m_cpu.inc(thread_time() - t0)

    # -- exposition -----------------------------------------------------------------------------------

    def families(self) -> Iterable[Metric]:
        self._flush()
        names = self._label_names + (("virtual_node",) if self.config.virtual_node_extra_label else ())
        total = Metric(PREFIX + "request", "Total count of requests between two nodes.", "counter")
        failed = Metric(PREFIX + "request_failed", "Total count of failed requests between two nodes.", "counter")
        server = Metric(PREFIX + "request_server_seconds", "Time for a request between two nodes as seen from "
                                                          "the server.", "histogram")
        client = Metric(PREFIX + "request_client_seconds", "Time for a request between two nodes as seen from "
                                                          "the client.", "histogram")
        for key, s in self._series.items():
            labels = dict(zip(names, key, strict=True))
            if self.config.virtual_node_extra_label and not labels["virtual_node"]:
                del labels["virtual_node"]
            total.add_sample(PREFIX + "request_total", labels, s.total)
            failed.add_sample(PREFIX + "request_failed_total", labels, s.failed)
            for family, h in ((server, s.server_seconds), (client, s.client_seconds)):
                for bucket in h.cumulative(self._le):
                    family.add_sample(family.name + "_bucket", dict(labels, le=bucket[0]), bucket[1])
                family.add_sample(family.name + "_count", labels, h.count)
                family.add_sample(family.name + "_sum", labels, h.sum)
        unpaired = Metric(PREFIX + "unpaired_spans", "Spans whose other side never arrived.", "counter")
        for (c, sv, ct), n in self._unpaired.items():
            unpaired.add_sample(PREFIX + "unpaired_spans_total", {"client": c, "server": sv, "connection_type": ct}, n)
        dropped = Metric(PREFIX + "dropped_spans", "Spans dropped because the edge store was full.", "counter")
        for (c, sv, ct), n in self._dropped.items():
            dropped.add_sample(PREFIX + "dropped_spans_total", {"client": c, "server": sv, "connection_type": ct}, n)
        yield from (total, failed, server, client, unpaired, dropped)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        if self._host is not None:
            return
        self._host = host
        self.watching_since = time.time()
        self._listener = await serve(host, self.config.endpoint, self, f"processor {self._label}", self._logger)
        self._expirer = asyncio.create_task(self._expire_loop(), name=f"servicegraph-expire {self._label}")
        host.watch(self._expirer, self._logger, self._label)

    async def shutdown(self) -> None:
        expirer, self._expirer = self._expirer, None
        if expirer is not None:
            expirer.cancel()
            await asyncio.gather(expirer, return_exceptions=True)
        listener, self._listener = self._listener, None
        await stop_serving(self._host, listener, self)
