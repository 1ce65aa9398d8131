"""``spanmetrics`` processor: calls and duration histograms per service, span name, kind and status (and
configured dimensions) from every span, served for Prometheus at its own ``endpoint``, with exemplars that
name only traces tail sampling kept. The OTel Collector contrib connector's options and metric names."""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.spanmetrics.config import Config
from pipelines.spanmetrics.processor import SpanMetricsProcessor


def create(settings: Settings, config: Config, next_consumer: TracesConsumer) -> SpanMetricsProcessor:
    return SpanMetricsProcessor(settings, config, next_consumer)


factory = Factory(
    "spanmetrics", Kind.PROCESSOR, Config, create,
    description="Request, error and duration series per operation from every span, served for Prometheus.",
)

__all__ = ["Config", "SpanMetricsProcessor", "create", "factory"]
