"""The ``batch`` processor: merges batches by joining wire bytes and sends them on size or timeout.

Unlike the OTel Collector's batch processor it never drops accepted data on a retriable error: the
batch stays at the head and is retried with backoff while new batches are buffered, up to
``max_pending_spans``; above that new batches are refused with :class:`RefusedError`. Only the
flusher task sends, one batch at a time, so order is kept.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import time

from collector import Capabilities, ConsumerError, Host, RefusedError, Settings, SpanBatch, TracesConsumer
from pipelines.batch.config import Config
from pipelines.batch.split import split_batch

BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0

# The OTel Collector's buckets for otelcol_processor_batch_batch_send_size.
SEND_SIZE_BUCKETS = (
    10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000,
    10000, 20000, 30000, 50000, 100000,
)


class Trigger(enum.Enum):
    SIZE = "size"
    TIMEOUT = "timeout"
    IMMEDIATE = "immediate"  # timeout 0: send after each consume
    SHUTDOWN = "shutdown"


class _Metrics:
    __slots__ = ("dropped", "pending", "refused", "send_size", "size_trigger", "timeout_trigger")

    def __init__(self, settings: Settings) -> None:
        t = settings.telemetry
        label = str(settings.id)
        self.send_size = t.histogram(
            "otelcol_processor_batch_batch_send_size", "Number of spans in the batch that was sent.",
            ("processor",), buckets=SEND_SIZE_BUCKETS,
        ).labels(label)
        self.size_trigger = t.counter(
            "otelcol_processor_batch_batch_size_trigger_send",
            "Number of times the batch was sent due to a size trigger.", ("processor",),
        ).labels(label)
        self.timeout_trigger = t.counter(
            "otelcol_processor_batch_timeout_trigger_send",
            "Number of times the batch was sent due to a timeout trigger.", ("processor",),
        ).labels(label)
        self.pending = t.gauge(
            "otelcol_processor_batch_pending_spans",
            "Spans held by the batch processor (buffered or being retried).", ("processor",),
        ).labels(label)
        self.refused = t.counter(
            "otelcol_processor_refused_spans", "Number of spans that were rejected by the processor.",
            ("processor",),
        ).labels(label)
        self.dropped = t.counter(
            "otelcol_processor_dropped_spans",
            "Number of spans dropped by the processor (permanent error from the next stage).",
            ("processor",),
        ).labels(label)


class BatchProcessor:
    """See the module docstring. ``consume_traces`` only buffers; the flusher task sends."""

    __slots__ = (
        "_buffer", "_buffer_spans", "_closed", "_closing", "_config", "_first_at", "_flusher", "_host",
        "_limit", "_logger", "_metrics", "_next", "_pending_spans", "_wake", "id", )

    def __init__(self, settings: Settings, config: Config, next_consumer: TracesConsumer) -> None:
        self.id = settings.id
        self._config = config
        self._next = next_consumer
        self._logger = settings.logger
        self._metrics = _Metrics(settings)
        self._limit = config.pending_limit
        self._buffer: collections.deque[SpanBatch] = collections.deque()
        self._buffer_spans = 0  # spans in _buffer
        self._pending_spans = 0  # spans in _buffer plus those taken by the flusher and not yet sent
        self._first_at = 0.0  # monotonic arrival time of the oldest batch in _buffer
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._host: Host | None = None
        self._closing = False
        self._closed = False

    @property
    def pending_spans(self) -> int:
        return self._pending_spans

    # -- consumer ---------------------------------------------------------------------------------

    async def consume_traces(self, batch: SpanBatch) -> None:
        count = batch.span_count
        if self._closing:
            self._metrics.refused.inc(count)
            raise RefusedError(f"batch processor {self.id} is shutting down")
        if self._pending_spans >= self._limit:
            self._metrics.refused.inc(count)
            raise RefusedError(
                f"batch processor {self.id} holds {self._pending_spans} spans "
                f"(max_pending_spans {self._limit}): next stage is not keeping up"
            )
        if count == 0:
            return
        first = not self._buffer
        if first:
            self._first_at = time.monotonic()
        self._buffer.append(batch)
        self._buffer_spans += count
        self._add_pending(count)
        # Wake the flusher to start the timer (first batch) or to send (size reached, no timeout).
        if first or self._buffer_spans >= self._config.send_batch_size or self._config.timeout <= 0:
            self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        if self._flusher is not None or self._closing:
            return
        self._host = host
        self._flusher = asyncio.create_task(self._run(), name=f"batch-flusher {self.id}")
        self._flusher.add_done_callback(self._flusher_done)
        if self._buffer:
            self._wake.set()

    async def shutdown(self) -> None:
        """Send everything held, retrying retriable errors until done or cancelled."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        try:
            flusher = self._flusher
            if flusher is not None and not flusher.done():
                # wait() neither raises the flusher's error (its done callback reports it) nor cancels it.
                await asyncio.wait([flusher])
            await self._drain()  # what is left when never started, or when the flusher failed
        except asyncio.CancelledError:
            if self._flusher is not None:
                self._flusher.cancel()
            if self._pending_spans:
                self._logger.error(
                    "batch processor %s: shutdown cancelled, %d spans were not sent",
                    self.id, self._pending_spans,
                )
            raise
        finally:
            self._closed = True

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            self._logger.error("batch processor %s: flusher failed", self.id, exc_info=err)
            if self._host is not None:
                self._host.report_fatal_error(err)

    # -- flusher ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        timeout = self._config.timeout
        while not self._closing:
            if not self._buffer:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._buffer_spans >= self._config.send_batch_size:
                await self._send_buffer(Trigger.SIZE)
                continue
            if timeout <= 0:
                await self._send_buffer(Trigger.IMMEDIATE)
                continue
            remaining = self._first_at + timeout - time.monotonic()
            if remaining <= 0:
                await self._send_buffer(Trigger.TIMEOUT)
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                pass
        await self._drain()

    async def _drain(self) -> None:
        while self._buffer:
            await self._send_buffer(Trigger.SHUTDOWN)

    async def _send_buffer(self, trigger: Trigger) -> None:
        """Take the buffer, merge it, split it if above send_batch_max_size, and deliver the parts."""
        taken = list(self._buffer)
        first_at = self._first_at
        self._buffer.clear()
        self._buffer_spans = 0
        merged = SpanBatch.concat(taken)
        max_size = self._config.send_batch_max_size
        parts = split_batch(merged, max_size) if max_size and merged.span_count > max_size else [merged]
        if trigger is Trigger.SIZE and len(parts) > 1 and parts[-1].span_count < self._config.send_batch_size:
            # Keep the short tail for the next trigger, as the OTel Collector does.
            tail = parts.pop()
            self._buffer.appendleft(tail)
            self._buffer_spans += tail.span_count
            self._first_at = first_at
        if trigger is Trigger.SIZE:
            self._metrics.size_trigger.inc()
        elif trigger is Trigger.TIMEOUT:
            self._metrics.timeout_trigger.inc()
        for part in parts:
            await self._deliver(part)

    async def _deliver(self, batch: SpanBatch) -> None:
        """Send one batch, retrying retriable errors; its spans leave the pending count once done."""
        count = batch.span_count
        delay = BACKOFF_INITIAL
        try:
            while True:
                try:
                    await self._next.consume_traces(batch)
                except ConsumerError as err:
                    if not err.retriable:
                        batch.release()
                        self._metrics.dropped.inc(count)
                        self._logger.error(
                            "batch processor %s: next stage rejected %d spans permanently, dropped: %s",
                            self.id, count, err,
                        )
                        return
                    wait = err.retry_after if err.retry_after is not None else delay
                    wait = min(max(wait, 0.0), BACKOFF_MAX)
                    self._logger.warning(
                        "batch processor %s: next stage refused %d spans (%s), retrying in %.2fs",
                        self.id, count, err, wait,
                    )
                    await asyncio.sleep(wait)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                except Exception:
                    batch.release()
                    self._metrics.dropped.inc(count)
                    self._logger.exception(
                        "batch processor %s: next stage failed unexpectedly, %d spans dropped", self.id, count
                    )
                    return
                self._metrics.send_size.observe(count)
                return
        finally:
            if not self._is_cancelled_mid_send():
                self._add_pending(-count)

    def _is_cancelled_mid_send(self) -> bool:
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

    def _add_pending(self, delta: int) -> None:
        self._pending_spans += delta
        self._metrics.pending.set(self._pending_spans)
