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
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.metrics_core import Metric

from collector import Capabilities, ConsumerError, Host, Settings, SpanBatch, TracesConsumer
from pipelines.exposition import (
    Histogram,
    MetricsListener,
    attribute_text,
    bucket_labels,
    serve,
    service_name,
    stop_serving,
)
from pipelines.servicegraph.config import Config
from pipelines.servicegraph.store import Edge, EdgeStore

PREFIX = "traces_service_graph_"
_SERVER, _CLIENT, _PRODUCER, _CONSUMER = 2, 3, 4, 5
_ERROR = 2
MESSAGING, DATABASE, VIRTUAL = "messaging_system", "database", "virtual_node"
_CAPABILITIES = Capabilities()


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
        self.watching_since = time.time()  # reset at start: since when edges are observed
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
        return len(self._store)

    def observed_edges(self) -> dict[tuple[str, str, str], float]:
        """(client, server, connection_type) -> unix time last seen, for every edge counted so far."""
        out: dict[tuple[str, str, str], float] = {}
        for key, s in self._series.items():
            k3 = (key[0], key[1], key[2])
            out[k3] = max(out.get(k3, 0.0), s.last_seen)
        return out

    # -- the span path ---------------------------------------------------------------------------------

    async def consume_traces(self, batch: SpanBatch) -> None:
        try:
            self.record(ExportTraceServiceRequest.FromString(batch.to_bytes()))
        except DecodeError as e:
            self._m_malformed.inc()
            batch.release()
            raise ConsumerError(f"{self._label}: malformed trace data: {e}") from e
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

    def _drop(self, client: str, server: str, connection: str) -> None:
        self._m_dropped.inc()
        key = (client, server, connection)
        self._dropped[key] = self._dropped.get(key, 0) + 1

    def expire(self, now: float | None = None) -> None:
        """Settle the edges whose ``store.ttl`` has passed: virtual nodes where the client names its callee
        (or the server span is a root), otherwise unpaired."""
        now = time.monotonic() if now is None else now
        self._settle(self._store.expired(now))

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
            self.expire()

    # -- exposition -----------------------------------------------------------------------------------

    def families(self) -> Iterable[Metric]:
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
