"""The ``memory_limiter`` processor: refuses data while the process is above its soft memory limit.

A background task reads the process RSS every ``check_interval``. Above the hard limit it forces a
garbage collection and a heap trim; above the soft limit (hard limit - spike) it refuses new batches with
a retriable :class:`RefusedError`, and forces a collection and trim again while it refuses (at most every
``min_gc_interval_when_soft_limited``, and at once when the buffers have drained), until a check finds
usage back below the soft limit. Forced collections stop the event loop, so they take at most a tenth of
the time whatever the ``min_gc_interval_*`` options allow.

Refusing only helps while the pipeline holds data it will let go of: the trace buffers, the in-memory
exporter queues (they register with the :class:`Host`) and the batches this stage has passed on and not
yet seen come back. So the limiter never refuses while nothing is held: memory the process uses holding
nothing (its *floor*: the RSS at start, after the components downstream started, and later the usage
after a trim with nothing held) is not data that refusing could free. When the floor leaves data less than
one spike of room below the soft limit (``floor > limit - 2 x spike``), both limits move up by the
difference, with a warning: a limit the idle process nearly fills must not refuse for good after one
burst (docs/components/processors/memory_limiter.md, "Sizing").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client import Gauge

from collector import Capabilities, Host, RefusedError, Settings, SpanBatch, TracesConsumer
from collector.memory import bound_free_heap, release_memory
from collector.telemetry import rss_bytes
from pipelines.memory_limiter.config import MIB, Config
from pipelines.memory_limiter.sysmem import total_memory

PREFIX = "tracetriage_memory_limiter_"
GC_TIME_SHARE_INVERSE = 9  # wait 9 times a forced collection's duration before the next: at most 10 % of the time
MIN_RATIONED_GC_S = 0.01  # forced collections shorter than this are not rationed


class _Metrics:
    __slots__ = ("baseline", "floor", "held", "limit", "memory", "refusing", "soft_limit", "trims")

    def __init__(self, settings: Settings) -> None:
        t, names = settings.telemetry, ("processor", "pipeline")
        labels = (str(settings.id), settings.pipeline)

        def gauge(name: str, doc: str) -> Gauge:
            return t.gauge(PREFIX + name, doc, names).labels(*labels)

        self.limit = gauge("limit_bytes", "The hard limit in force (forced GC above it), in bytes.")
        self.soft_limit = gauge("soft_limit_bytes", "The soft limit in force (data refused above it), in bytes.")
        self.baseline = gauge("baseline_bytes", "Process memory (RSS) at start, after a GC and trim, in bytes.")
        self.floor = gauge("floor_bytes", "Process memory last measured with nothing held, in bytes.")
        self.memory = gauge("memory_bytes", "Process memory (RSS) at the last check, in bytes.")
        self.held = gauge("held_items", "Items (spans, queued batches) the pipeline held at the last check.")
        self.refusing = gauge("refusing", "1 while data is refused, else 0.")
        self.trims = t.counter(PREFIX + "trims", "Garbage collections with a heap trim forced by the limiter.",
                               names).labels(*labels)


class MemoryLimiter:
    """See the module docstring. ``read_memory`` (bytes in use) and ``held`` (items the pipeline holds;
    by default the host's count, read from ``start()`` on) may be replaced, e.g. by tests."""

    __slots__ = (
        "_ceiling", "_checker", "_closed", "_config", "_gc_cost", "_in_flight", "_last_gc", "_limit", "_logger", "_m",
        "_next", "_refused", "_refusing", "_soft", "_spike", "_warned", "baseline", "collect_garbage", "floor",
        "hard_limit", "held", "id", "read_memory", "soft_limit",
    )

    def __init__(
        self,
        settings: Settings,
        config: Config,
        next_consumer: TracesConsumer,
        *,
        read_memory: Callable[[], int] = rss_bytes,
        total_memory_bytes: int | None = None,
        held: Callable[[], int] | None = None,
    ) -> None:
        self.id = settings.id
        self._config = config
        self._next = next_consumer
        self._logger = settings.logger
        self.read_memory = read_memory
        self.held = held
        # Garbage collection, then the allocator's free memory back to the kernel, so RSS can fall.
        self.collect_garbage: Callable[[], object] = release_memory
        if config.limit_mib == 0 and total_memory_bytes is None:
            total_memory_bytes = total_memory()
            if total_memory_bytes is None:
                raise ValueError(
                    "cannot find the total memory size: use limit_mib instead of limit_percentage"
                )
        limit, spike = config.limits(total_memory_bytes)
        self._limit, self._spike, self._soft = limit, spike, limit - spike
        self.hard_limit, self.soft_limit = limit, limit - spike
        # Limits never move past the memory available to the process, when it is known.
        self._ceiling = total_memory_bytes if total_memory_bytes is not None else total_memory()
        self.baseline: int | None = None
        self._warned: int | None = None
        self.floor: int | None = None
        self._refusing = False
        self._in_flight = 0
        self._last_gc = float("-inf")
        self._gc_cost = 0.0
        self._checker: asyncio.Task[None] | None = None
        self._closed = False
        self._refused = settings.telemetry.counter(
            "otelcol_processor_refused_spans", "Number of spans that were rejected by the processor.",
            ("processor",),
        ).labels(str(settings.id))
        self._m = _Metrics(settings)
        self._m.limit.set(self.hard_limit)
        self._m.soft_limit.set(self.soft_limit)
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
        self._in_flight += 1
        try:
            await self._next.consume_traces(batch)
        finally:
            self._in_flight -= 1

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        if self._checker is not None or self._closed:
            return
        if self.held is None:
            self.held = host.held
        # Up to half a spike of free heap may stay with the process; more goes back to the kernel at once.
        bound_free_heap(self._spike // 2)
        # Components start downstream first: what the process uses now, after a GC and trim, is its floor.
        self.collect_garbage()
        self.baseline = self.read_memory()
        self._m.baseline.set(self.baseline)
        self._set_floor(self.baseline, at_start=True)
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

    def _held(self) -> int:
        """Items held downstream now. Before ``start()`` without a ``held`` source it is unknown, and
        taken as "something" (the limiter then works on memory alone, as the OTel Collector's does)."""
        if self.held is None:
            return max(1, self._in_flight)
        return self._in_flight + self.held()

    def check_memory(self) -> None:
        """One measurement: GC and trim above the hard limit; refuse above the soft limit while anything
        is held, GC and trim again while refusing; learn the floor when nothing is held."""
        used = self.read_memory()
        collected = False
        if used >= self.hard_limit and self._gc_allowed(self._config.min_gc_interval_when_hard_limited):
            self._logger.warning(
                "memory limiter %s: memory usage %d MiB above hard limit %d MiB, forcing a GC",
                self.id, used // MIB, self.hard_limit // MIB,
            )
            used, collected = self._collect(), True
        held = self._held()
        # Above the soft limit: collect and trim when crossing it and again while refusing; with nothing
        # held, at once (within the time share), to learn the floor. Acceptance does not wait for it.
        soft_interval = 0.0 if held == 0 else self._config.min_gc_interval_when_soft_limited
        if used >= self.soft_limit and not collected and self._gc_allowed(soft_interval):
            used, collected = self._collect(), True
        if held == 0 and self.floor is not None and (collected or used < self.floor):
            self._set_floor(used)
        refuse = used >= self.soft_limit and held > 0
        self._m.memory.set(used)
        self._m.held.set(held)
        if refuse != self._refusing:
            if refuse:
                self._logger.info(
                    "memory limiter %s: memory usage %d MiB above soft limit %d MiB (%d items held), "
                    "refusing data", self.id, used // MIB, self.soft_limit // MIB, held,
                )
            else:
                self._logger.info(
                    "memory limiter %s: memory usage %d MiB, soft limit %d MiB, %d items held: accepting data",
                    self.id, used // MIB, self.soft_limit // MIB, held,
                )
            self._refusing = refuse
            self._m.refusing.set(int(refuse))
        else:
            self._logger.debug("memory limiter %s: memory usage %d MiB", self.id, used // MIB)

    def _set_floor(self, floor: int, at_start: bool = False) -> None:
        """Memory used holding nothing: the limits move up when it leaves data less than a spike of room."""
        self.floor = floor
        self._m.floor.set(floor)
        offset = max(0, floor - (self._soft - self._spike))
        if self._ceiling is not None:  # never past the memory the process has (the cgroup's or the machine's)
            offset = max(0, min(offset, self._ceiling - self._limit))
        offset -= offset % MIB  # whole MiB: a floor that wobbles by a few pages changes nothing
        hard, soft = self._limit + offset, self._soft + offset
        if (hard, soft) == (self.hard_limit, self.soft_limit):
            return
        # A warning the first time, then when the limits rose by a quarter of the spike since the last one.
        warn = offset > 0 and (self._warned is None or offset >= self._warned + self._spike // 4)
        self.hard_limit, self.soft_limit = hard, soft
        self._m.limit.set(hard)
        self._m.soft_limit.set(soft)
        if not warn:
            self._logger.info(
                "memory limiter %s: process memory with nothing held %d MiB; limits now %d / %d MiB",
                self.id, floor // MIB, hard // MIB, soft // MIB,
            )
            return
        self._warned = offset
        self._logger.warning(
            "memory limiter %s: the %s process uses %d MiB, which leaves data less than the spike limit "
            "(%d MiB) below the soft limit of %d MiB; limits moved up by %d MiB to %d / %d MiB so that the "
            "limiter cannot refuse for good. Size limit_mib at least %d MiB (idle + 2 x spike + room for "
            "data): see the memory_limiter docs, 'Sizing'",
            self.id, "idle" if at_start else "drained", floor // MIB, self._spike // MIB, self._soft // MIB,
            offset // MIB, hard // MIB, soft // MIB, (floor + 2 * self._spike) // MIB + 1,
        )

    def _gc_allowed(self, min_interval: float) -> bool:
        # A forced collection stops the event loop (a full GC and a heap trim: 0.1 - 0.4 s on a few hundred
        # MiB), and while the memory is held data it frees little: collecting at every check would starve
        # the very pipeline that must drain. So at most a tenth of the time goes to forced collections.
        # (A collection shorter than MIN_RATIONED_GC_S stops nothing worth rationing.)
        since = time.monotonic() - self._last_gc
        cost = self._gc_cost if self._gc_cost >= MIN_RATIONED_GC_S else 0.0
        return since >= min_interval and since >= GC_TIME_SHARE_INVERSE * cost

    def _collect(self) -> int:
        t0 = time.monotonic()
        self.collect_garbage()
        self._last_gc = time.monotonic()
        self._gc_cost = self._last_gc - t0
        self._m.trims.inc()
        used = self.read_memory()
        self._logger.info("memory limiter %s: memory usage after GC and trim %d MiB", self.id, used // MIB)
        return used
