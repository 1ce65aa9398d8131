"""``batch`` processor: groups batches into larger ones (by size or timeout) before the next stage."""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.batch.config import Config
from pipelines.batch.processor import BatchProcessor
from pipelines.batch.split import split_batch


def create(settings: Settings, config: Config, next_consumer: TracesConsumer) -> BatchProcessor:
    return BatchProcessor(settings, config, next_consumer)


factory = Factory(
    "batch", Kind.PROCESSOR, Config, create,
    description="Merges batches by size or timeout; keeps data on retriable errors, refuses when full.",
)

__all__ = ["BatchProcessor", "Config", "create", "factory", "split_batch"]
