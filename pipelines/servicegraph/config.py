"""Config of the ``servicegraph`` processor (the options and defaults of the OTel Collector contrib
``servicegraph`` connector, and the ``endpoint`` of the contrib ``prometheus`` exporter it serves on)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import Duration, field

DEFAULT_BUCKETS: tuple[Duration, ...] = tuple(Duration(s) for s in (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.050, 0.100, 0.200, 0.400, 0.800, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0))


@dataclass(frozen=True)
class Store:
    """Half-seen edges wait ``ttl`` for their other side; at most ``max_items`` wait (a span that would
    add one more is dropped and counted)."""

    ttl: Duration = field(Duration(2.0), gt=0)
    max_items: int = field(1000, ge=1)


@dataclass(frozen=True)
class Config:
    """``servicegraph`` settings.

    * ``endpoint``: where Prometheus scrapes the series (``/metrics``; shared with other processors that
      name the same endpoint).
    * ``latency_histogram_buckets``: bounds of ``..._request_server_seconds`` and ``..._client_seconds``.
    * ``dimensions``: span or resource attributes added as ``client_<name>`` and ``server_<name>`` labels.
    * ``store``: how half-seen edges wait for their other side; ``store_expiration_loop``: how often expired
      ones are looked for.
    * ``virtual_node_peer_attributes``: a client span whose server never reports names its callee by the
      first of these attributes it has (an uninstrumented database or service), as a virtual node;
      ``virtual_node_extra_label`` adds ``virtual_node`` = ``client`` or ``server`` to such edges.
    * ``database_name_attribute``: a client span with this attribute is a call to that database: the edge
      is complete at once (``connection_type="database"``).
    * ``max_series``: edges (label sets) at most; further ones are counted and not kept.
    """

    endpoint: str = "localhost:8889"
    latency_histogram_buckets: tuple[Duration, ...] = DEFAULT_BUCKETS
    dimensions: tuple[str, ...] = ()
    store: Store = field(default_factory=Store)
    store_expiration_loop: Duration = field(Duration(2.0), gt=0)
    virtual_node_peer_attributes: tuple[str, ...] = ("peer.service", "db.name", "db.system")
    virtual_node_extra_label: bool = False
    database_name_attribute: str = "db.name"
    max_series: int = field(10000, ge=1)

    def validate(self) -> Iterator[tuple[str, str]]:
        b = self.latency_histogram_buckets
        if not b:
            yield "latency_histogram_buckets", "needs at least one bucket"
        elif list(b) != sorted(set(b)) or b[0] < 0:
            yield "latency_histogram_buckets", "must be non-negative, increasing, without repeats"
        for i, name in enumerate(self.dimensions):
            if not name:
                yield f"dimensions[{i}]", "must not be empty"
