"""``servicegraph`` processor: edges between services (and to uninstrumented databases and services as
virtual nodes) from pairs of client and server spans of every trace, served for Prometheus at its own
``endpoint``. The OTel Collector contrib connector's options, metric names and labels, so Grafana's
service-graph views work unchanged."""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.servicegraph.config import Config, Store
from pipelines.servicegraph.processor import ServiceGraphProcessor
from pipelines.servicegraph.store import Edge, EdgeStore


def create(settings: Settings, config: Config, next_consumer: TracesConsumer) -> ServiceGraphProcessor:
    return ServiceGraphProcessor(settings, config, next_consumer)


factory = Factory(
    "servicegraph", Kind.PROCESSOR, Config, create,
    description="Who calls whom, from client/server span pairs of every trace, served for Prometheus.",
)

__all__ = ["Config", "Edge", "EdgeStore", "ServiceGraphProcessor", "Store", "create", "factory"]
