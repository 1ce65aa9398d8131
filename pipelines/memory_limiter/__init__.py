"""``memory_limiter`` processor: refuses data (retriably) while process memory is above a soft limit."""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.memory_limiter.config import Config
from pipelines.memory_limiter.processor import MemoryLimiter
from pipelines.memory_limiter.sysmem import total_memory


def create(settings: Settings, config: Config, next_consumer: TracesConsumer) -> MemoryLimiter:
    return MemoryLimiter(settings, config, next_consumer)


factory = Factory(
    "memory_limiter", Kind.PROCESSOR, Config, create,
    description="Refuses data while the process RSS is above the soft limit; forces GC above the limit.",
)

__all__ = ["Config", "MemoryLimiter", "create", "factory", "total_memory"]
