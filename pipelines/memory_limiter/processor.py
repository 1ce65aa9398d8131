"""The ``memory_limiter`` processor: refuses data while the process is above its soft memory limit.

A background task reads the process RSS every ``check_interval``. Above the hard limit it forces a
garbage collection; above the soft limit (hard limit - spike) it refuses new batches with a retriable
:class:`RefusedError` until a later check finds usage back below the soft limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from collector import Capabilities, Host, RefusedError, Settings, SpanBatch, TracesConsumer
from collector.memory import release_memory
from collector.telemetry import rss_bytes
from pipelines.memory_limiter.config import MIB, Config
from pipelines.memory_limiter.sysmem import total_memory


class MemoryLimiter:
    """See the module docstring. ``read_memory`` (bytes in use) may be replaced, e.g. by tests."""

    __slots__ = (
        "_checker", "_closed", "_config", "_last_gc", "_logger", "_next", "_refused", "_refusing",
        "collect_garbage", "hard_limit", "id", "read_memory", "soft_limit",
    )

    def __init__(
        self,
        settings: Settings,
        config: Config,
        next_consumer: TracesConsumer,
        *,
        read_memory: Callable[[], int] = rss_bytes,
        total_memory_bytes: int | None = None,
    ) -> None:
        self.id = settings.id
        self._config = config
        self._next = next_consumer
        self._logger = settings.logger
        self.read_memory = read_memory
        # Garbage collection, then the allocator's free memory back to the kernel, so RSS can fall.
        self.collect_garbage: Callable[[], object] = release_memory
        if config.limit_mib == 0 and total_memory_bytes is None:
            total_memory_bytes = total_memory()
            if total_memory_bytes is None:
                raise ValueError(
                    "cannot find the total memory size: use limit_mib instead of limit_percentage"
                )
        limit, spike = config.limits(total_memory_bytes)
        self.hard_limit = limit
        self.soft_limit = limit - spike
        self._refusing = False
        self._last_gc = float("-inf")
        self._checker: asyncio.Task[None] | None = None
        self._closed = False
        self._refused = settings.telemetry.counter(
            "otelcol_processor_refused_spans", "Number of spans that were rejected by the processor.",
            ("processor",),
        ).labels(str(settings.id))
        self._logger.info(
            "memory limiter %s: limit %d MiB, soft limit %d MiB, check every %.3gs",
            self.id, limit // MIB, self.soft_limit // MIB, config.check_interval,
        )

    @property
    def refusing(self) -> bool:
        return self._refusing

    async def consume_traces(self, batch: SpanBatch) -> None:
        if self._refusing:
            self._refused.inc(batch.span_count)
            raise RefusedError(
                f"memory usage above soft limit of {self.soft_limit // MIB} MiB, "
                "data refused (memory_limiter)"
            )
        await self._next.consume_traces(batch)

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        if self._checker is not None or self._closed:
            return
        self.check_memory()
        self._checker = asyncio.create_task(self._run(), name=f"memory-limiter {self.id}")
        self._checker.add_done_callback(lambda task: self._checker_done(task, host))

    async def shutdown(self) -> None:
        self._closed = True
        task, self._checker = self._checker, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    def _checker_done(self, task: asyncio.Task[None], host: Host) -> None:
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            self._logger.error("memory limiter %s: check task failed", self.id, exc_info=err)
            host.report_fatal_error(err)

    async def _run(self) -> None:
        interval = self._config.check_interval
        while True:
            await asyncio.sleep(interval)
            self.check_memory()

    def check_memory(self) -> None:
        """One measurement: force a GC above the hard limit, refuse above the soft limit."""
        used = self.read_memory()
        if used >= self.hard_limit and self._gc_allowed(self._config.min_gc_interval_when_hard_limited):
            self._logger.warning(
                "memory limiter %s: memory usage %d MiB above hard limit %d MiB, forcing a GC",
                self.id, used // MIB, self.hard_limit // MIB,
            )
            used = self._collect()
        refuse = used >= self.soft_limit
        if refuse and not self._refusing and self._gc_allowed(self._config.min_gc_interval_when_soft_limited):
            used = self._collect()
            refuse = used >= self.soft_limit
        if refuse != self._refusing:
            if refuse:
                self._logger.info(
                    "memory limiter %s: memory usage %d MiB above soft limit %d MiB, refusing data",
                    self.id, used // MIB, self.soft_limit // MIB,
                )
            else:
                self._logger.info(
                    "memory limiter %s: memory usage %d MiB back below soft limit %d MiB, accepting data",
                    self.id, used // MIB, self.soft_limit // MIB,
                )
            self._refusing = refuse
        else:
            self._logger.debug("memory limiter %s: memory usage %d MiB", self.id, used // MIB)

    def _gc_allowed(self, min_interval: float) -> bool:
        return time.monotonic() - self._last_gc >= min_interval

    def _collect(self) -> int:
        self.collect_garbage()
        self._last_gc = time.monotonic()
        used = self.read_memory()
        self._logger.info("memory limiter %s: memory usage after GC %d MiB", self.id, used // MIB)
        return used
