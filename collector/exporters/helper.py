"""Queue and retry shared by every exporter, after the OTel Collector's exporterhelper.

An exporter gives :class:`QueuedRetrySender` one ``async send(batch)`` callable that makes a single
attempt and raises :class:`~collector.errors.ConsumerError` (``retriable`` / ``retry_after``) when it
fails. The sender then

* queues the batch (``sending_queue``): ``consume_traces`` returns at once, a bounded
  ``asyncio.Queue`` holds up to ``queue_size`` batches and ``num_consumers`` tasks drain it; a full
  queue raises :class:`~collector.errors.RefusedError` so receivers push back to their clients.
  With ``storage: <file_storage extension id>`` the queue is on disk
  (:class:`~collector.exporters.persistent_queue.PersistentQueue`): ``consume_traces`` returns once
  the batch is written, and batches left by a previous run are sent first after a restart;
  With the queue disabled, ``consume_traces`` sends in the caller's task and raises the final error;
* retries retriable failures with jittered exponential backoff (``retry_on_failure``), honouring the
  server's ``retry_after`` hint, and gives up after ``max_elapsed_time`` (0: never);
* bounds every attempt by ``timeout`` (0: no bound);
* stops attempts while the destination is down (``circuit_breaker``,
  :mod:`collector.exporters.circuit_breaker`): after ``failure_threshold`` retriable failures in a row
  the circuit opens, the consumers wait (batches stay in the queue; time spent waiting is not retry
  time, so nothing is given up while the circuit is open) and one probe per ``open_duration`` tests the
  destination. With the queue disabled an open circuit refuses at once (fail fast);
* counts ``otelcol_exporter_sent_spans``, ``otelcol_exporter_send_failed_spans``,
  ``otelcol_exporter_enqueue_failed_spans`` and keeps the queue size/capacity gauges current.

``send`` may return the number of spans the destination rejected in an otherwise successful call
(OTLP partial success); those are counted as failed, the rest as sent.

Every batch ends as sent, failed (counted and logged) or, if the service's shutdown deadline cancels
:meth:`QueuedRetrySender.drain`, still queued (logged once with the number of spans, and whether they
stay on disk or are lost). A persistent queue whose circuit is open at shutdown is not waited for: its
batches are on disk and the destination is down.

A batch that cannot be written to the persistent queue is refused with a generic message: the file
path and the operating system's error are logged, never sent to clients. The queue is reported
unhealthy to the host (``health_check`` answers 503) until a write succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.component import ComponentID, Host, Kind, Settings
from collector.config.schema import Duration, field
from collector.errors import ComponentStartError, ConsumerError, RefusedError
from collector.exporters.circuit_breaker import CircuitBreaker, CircuitBreakerConfig, Permit
from collector.exporters.persistent_queue import BatchQueue, MemoryQueue, PersistentQueue
from collector.model import SpanBatch

__all__ = [
    "Backoff",
    "CircuitBreakerConfig",
    "ExporterBaseConfig",
    "QueueConfig",
    "QueuedRetrySender",
    "RetryConfig",
    "SendFunc",
    "rejected_spans",
]

SendFunc = Callable[[SpanBatch], Awaitable[int | None]]
"""One attempt to deliver a batch; returns the number of spans rejected by the destination, or None."""

# A server's retry hint is honoured up to this many seconds (or max_interval when that is larger).
RETRY_AFTER_CAP = 60.0

DEFAULT_TIMEOUT = Duration(5.0)
DEFAULT_INITIAL_INTERVAL = Duration(5.0)
DEFAULT_MAX_INTERVAL = Duration(30.0)
DEFAULT_MAX_ELAPSED_TIME = Duration(300.0)
DEFAULT_CIRCUIT_BREAKER = CircuitBreakerConfig()


@dataclass(frozen=True)
class QueueConfig:
    """``sending_queue``: in-memory queue of batches in front of the senders."""

    enabled: bool = True
    num_consumers: int = field(10, ge=0)
    queue_size: int = field(1000, ge=0)
    storage: str | None = None  # id of a file_storage extension: the queue is kept on disk

    def validate(self) -> list[tuple[str, str]]:
        if not self.enabled:
            return []
        issues = []
        if self.storage is not None:
            try:
                ComponentID.parse(self.storage)
            except ValueError as e:
                issues.append(("storage", str(e)))
        if self.num_consumers <= 0:
            issues.append(("num_consumers", "must be positive when the queue is enabled"))
        if self.queue_size <= 0:
            issues.append(("queue_size", "must be positive when the queue is enabled"))
        return issues


@dataclass(frozen=True)
class RetryConfig:
    """``retry_on_failure``: exponential backoff for retriable failures."""

    enabled: bool = True
    initial_interval: Duration = field(DEFAULT_INITIAL_INTERVAL, ge=0)
    randomization_factor: float = field(0.5, ge=0, le=1)
    multiplier: float = field(1.5, ge=0)
    max_interval: Duration = field(DEFAULT_MAX_INTERVAL, ge=0)
    max_elapsed_time: Duration = field(DEFAULT_MAX_ELAPSED_TIME, ge=0)

    def validate(self) -> list[tuple[str, str]]:
        if not self.enabled or self.max_elapsed_time <= 0:
            return []
        issues = []
        if self.max_elapsed_time < self.initial_interval:
            issues.append(("max_elapsed_time", "must not be less than initial_interval"))
        if self.max_elapsed_time < self.max_interval:
            issues.append(("max_elapsed_time", "must not be less than max_interval"))
        return issues


@dataclass(frozen=True, kw_only=True)
class ExporterBaseConfig:
    """The exporterhelper settings every queued exporter accepts; subclass and add your own fields."""

    timeout: Duration = field(DEFAULT_TIMEOUT, ge=0)
    sending_queue: QueueConfig = QueueConfig()
    retry_on_failure: RetryConfig = RetryConfig()
    circuit_breaker: CircuitBreakerConfig = DEFAULT_CIRCUIT_BREAKER


class Backoff:
    """Jittered exponential backoff, as Go's ``backoff.ExponentialBackOff`` (no elapsed-time stop)."""

    __slots__ = ("_config", "_current", "_random")

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._current = float(config.initial_interval)
        self._random = rng or random.Random()  # noqa: S311 - jitter spreads retries; nothing to guess

    def next_delay(self) -> float:
        cfg = self._config
        current = self._current
        delta = cfg.randomization_factor * current
        delay = current - delta + self._random.random() * (2 * delta)
        self._current = min(current * cfg.multiplier, float(cfg.max_interval))
        return max(delay, 0.0)


class QueuedRetrySender:
    """Queue + retry + telemetry around an exporter's single-attempt ``send``.

    Use: create in the exporter's constructor, ``await start()`` in the exporter's ``start`` (after the
    connection exists), delegate ``consume_traces``, and ``await drain()`` first thing in ``shutdown``
    (before closing the connection).
    """

    __slots__ = (
        "_active",
        "_breaker",
        "_capacity_gauge",
        "_closed",
        "_component",
        "_consumers",
        "_enqueue_failed",
        "_failed",
        "_host",
        "_idle",
        "_in_flight_spans",
        "_logger",
        "_name",
        "_queue",
        "_queue_config",
        "_queue_gauge",
        "_queue_problem",
        "_retry",
        "_send",
        "_sent",
        "_timeout",
    )

    def __init__(
        self,
        settings: Settings,
        send: SendFunc,
        *,
        queue: QueueConfig,
        retry: RetryConfig,
        timeout: float,
        circuit_breaker: CircuitBreakerConfig | None = None,
    ) -> None:
        self._send = send
        self._queue_config = queue
        self._retry = retry
        self._timeout = float(timeout)
        self._logger = settings.logger
        self._name = str(settings.id)
        self._component = (settings.kind, settings.id)
        tel = settings.telemetry
        self._sent = tel.exporter_sent_spans.labels(exporter=self._name)
        self._failed = tel.exporter_send_failed_spans.labels(exporter=self._name)
        self._enqueue_failed = tel.exporter_enqueue_failed_spans.labels(exporter=self._name)
        self._queue_gauge = tel.exporter_queue_size.labels(exporter=self._name)
        self._capacity_gauge = tel.exporter_queue_capacity.labels(exporter=self._name)
        self._queue: BatchQueue | None = None
        if queue.enabled:
            if queue.storage is None:
                self._queue = MemoryQueue(queue.queue_size)
            self._capacity_gauge.set(queue.queue_size)
        else:
            self._capacity_gauge.set(0)
        self._queue_gauge.set(0)
        self._consumers: list[asyncio.Task[None]] = []
        self._closed = False
        self._active = 0  # sends in progress (consumers and synchronous callers)
        self._in_flight_spans = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._host: Host | None = None
        self._queue_problem = False  # the last write to the persistent queue failed
        self._breaker: CircuitBreaker | None = None
        if circuit_breaker is not None and circuit_breaker.enabled:
            transitions = tel.counter(
                "tracetriage_exporter_circuit_transitions",
                "Transitions of the exporter's circuit breaker, by the state entered (closed, open, half_open).",
                ("exporter", "to"),
            )
            name = self._name
            self._breaker = CircuitBreaker(
                circuit_breaker, what=f"Exporter {name}", logger=self._logger,
                state_gauge=tel.gauge(
                    "tracetriage_exporter_circuit_state",
                    "State of the exporter's circuit breaker: 0 closed, 1 open, 2 half-open.", ("exporter",),
                ).labels(exporter=name),
                transitions=lambda to: transitions.labels(name, to),
            )

    @classmethod
    def from_config(cls, settings: Settings, send: SendFunc, config: ExporterBaseConfig) -> QueuedRetrySender:
        return cls(
            settings, send, queue=config.sending_queue, retry=config.retry_on_failure, timeout=config.timeout,
            circuit_breaker=config.circuit_breaker,
        )

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def queue_size(self) -> int:
        """Batches waiting in the queue (not counting those being sent)."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def persistent(self) -> bool:
        return self._queue is not None and self._queue.persistent

    async def start(self, host: Host | None = None) -> None:
        """Start the queue consumers (no-op with the queue disabled or when already started).

        With ``sending_queue.storage`` the ``host`` must be given: the storage extension is looked up
        there, and the batches a previous run left on disk are queued first. Raises
        :class:`ComponentStartError` if the extension is missing or its directory unusable.
        """
        if self._consumers or self._closed:
            return
        self._host = host
        if self._queue_config.enabled and self._queue_config.storage is not None and self._queue is None:
            self._queue = await self._open_persistent(host, self._queue_config.storage)
        if self._queue is None:
            return
        if host is not None and isinstance(self._queue, MemoryQueue):
            host.add_holder(lambda: self.queue_size)  # batches held in memory; a disk queue holds none
        for i in range(self._queue_config.num_consumers):
            self._consumers.append(asyncio.create_task(self._consume(), name=f"{self._name}-sender-{i}"))

    async def _open_persistent(self, host: Host | None, storage: str) -> PersistentQueue:
        # Imported here: the extension module is a component of its own, not a dependency of every exporter.
        from collector.extensions.file_storage import FileStorageExtension

        who = f"exporter {self._name}"
        if host is None:
            raise ComponentStartError(who, "sending_queue.storage needs the exporter to pass the host to start()")
        try:
            ext_id = ComponentID.parse(storage)
        except ValueError as e:
            raise ComponentStartError(who, f"sending_queue.storage: {e}") from e
        ext = host.extensions.get(ext_id)
        if ext is None:
            raise ComponentStartError(
                who, f"sending_queue.storage refers to extension {storage!r}, which is not defined in "
                     f"extensions or not enabled in service.extensions")
        if not isinstance(ext, FileStorageExtension):
            raise ComponentStartError(who, f"sending_queue.storage: extension {storage!r} is not a file_storage")
        kind, cid = self._component
        try:
            queue = PersistentQueue(ext.directory_for(kind if kind is not None else Kind.EXPORTER, cid),
                                    self._queue_config.queue_size, fsync=ext.fsync, logger=self._logger)
            recovered = await queue.open()
        except OSError as e:
            raise ComponentStartError(who, f"cannot open the persistent queue: {e}") from e
        if recovered:
            self._logger.info("Exporter %s: %d batches (%d spans) left by the previous run will be sent first",
                              self._name, recovered, queue.recovered_spans)
        self._queue_gauge.set(queue.qsize())
        return queue

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The circuit breaker (None when ``circuit_breaker.enabled`` is false)."""
        return self._breaker

    async def drain(self) -> None:
        """Stop accepting batches, deliver (with retry) what is queued or in flight, stop the consumers.

        Idempotent. If the caller cancels this (shutdown deadline), the consumers are cancelled and the
        spans still queued or in flight are logged. A persistent queue is not waited for while the circuit
        is open: what it holds stays on disk for the next run.
        """
        self._closed = True
        abandoned = False
        if self._queue is not None and not self._queue.persistent and self._breaker is not None \
                and self._breaker.half_open_now():
            # What waits in memory is lost at the deadline: probe the destination now rather than after
            # open_duration.
            self._logger.info("Exporter %s: shutting down with the circuit open, probing the destination now",
                              self._name)
        try:
            if self._queue is not None and self._consumers:
                if self._queue.persistent and self._breaker is not None:
                    abandoned = not await self._join_unless_open(self._queue, self._breaker)
                else:
                    await self._queue.join()
            if abandoned:
                self._report_abandoned("not waiting: its circuit is open, the destination is down")
            else:
                await self._idle.wait()
        except asyncio.CancelledError:
            self._report_abandoned()
            raise
        finally:
            await self._stop_consumers()
            if self._queue is not None and self._queue.persistent:
                await self._queue.close()
        if self._queue is not None and self._queue.qsize():
            # Never started: nothing could drain the queue.
            self._report_abandoned()

    async def _join_unless_open(self, queue: BatchQueue, breaker: CircuitBreaker) -> bool:
        """Wait until the queue is empty (True) or the circuit is open (False)."""
        while True:
            join = asyncio.ensure_future(queue.join())
            opened = asyncio.ensure_future(breaker.wait_open())
            try:
                await asyncio.wait([join, opened], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (join, opened):
                    f.cancel()
                await asyncio.gather(join, opened, return_exceptions=True)
            if join.done() and not join.cancelled():
                return True
            if breaker.is_open:
                return False

    async def _stop_consumers(self) -> None:
        tasks, self._consumers = self._consumers, []
        for t in tasks:
            t.cancel()
        if tasks:
            # gather: the consumers' CancelledError become results, a cancellation of drain() still raises.
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception):
                    self._logger.error("Exporter %s: a queue consumer failed", self._name, exc_info=result)

    def _report_abandoned(self, why: str = "") -> None:
        """Log once what shutdown leaves behind: on disk (persistent queue) or lost (in memory)."""
        queued_batches = 0
        queued_spans = 0
        persistent = self._queue is not None and self._queue.persistent
        if self._queue is not None:
            for batch in self._queue.take_all_nowait():
                queued_batches += 1
                queued_spans += batch.span_count
            self._queue_gauge.set(0)
        in_flight = self._in_flight_spans
        self._in_flight_spans = 0  # reported: a second report (never started) says nothing more
        if not (queued_batches or in_flight):
            return
        because = f", {why}" if why else ""
        if persistent:
            self._logger.warning(
                "Exporter %s stopped before delivering everything%s: %d spans queued (%d batches) and %d in "
                "flight stay in the persistent queue on disk and will be sent after a restart",
                self._name, because, queued_spans, queued_batches, in_flight,
            )
            return
        self._logger.error(
            "Exporter %s stopped before delivering everything%s: %d spans queued (%d batches) and %d in flight "
            "were held in memory and are lost",
            self._name, because, queued_spans, queued_batches, in_flight,
        )

    # -- consumer side -----------------------------------------------------------------------------------

    async def consume_traces(self, batch: SpanBatch) -> None:
        if self._closed:
            self._enqueue_failed.inc(batch.span_count)
            raise RefusedError(f"exporter {self._name} is shutting down")
        if self._queue is None:
            if self._queue_config.enabled:  # a persistent queue not opened yet
                self._enqueue_failed.inc(batch.span_count)
                raise RefusedError(f"exporter {self._name} is not started yet")
            if self._breaker is not None and self._breaker.is_open:
                self._enqueue_failed.inc(batch.span_count)  # fail fast: no attempt while the circuit is open
                raise RefusedError(f"exporter {self._name}: the destination is unavailable (circuit open)")
            err = await self.send_with_retry(batch)
            if err is not None:
                raise err  # the caller keeps the batch (and its acks) and decides
            batch.release()
            return
        try:
            await self._queue.put(batch)
        except OSError as e:
            self._enqueue_failed.inc(batch.span_count)
            # The path and the system's words are for the operator's log, never for clients.
            self._logger.error("Exporter %s: cannot write to the persistent queue: %s", self._name, e)
            self._set_queue_problem(True)
            raise RefusedError(f"exporter {self._name} cannot queue data right now") from None
        except asyncio.QueueFull:
            self._enqueue_failed.inc(batch.span_count)
            self._logger.warning(
                "Exporter %s: sending queue is full (%d batches), refusing %d spans",
                self._name, self._queue.maxsize, batch.span_count,
            )
            raise RefusedError(f"sending queue of exporter {self._name} is full") from None
        if self._queue_problem:
            self._set_queue_problem(False)
        self._queue_gauge.set(self._queue.qsize())

    def _set_queue_problem(self, failing: bool) -> None:
        if failing == self._queue_problem:
            return
        self._queue_problem = failing
        if failing:
            problem = f"exporter {self._name}: the persistent queue cannot be written"
        else:
            problem = None
            self._logger.info("Exporter %s: the persistent queue can be written again", self._name)
        if self._host is not None:
            self._host.report_problem(f"exporter {self._name} persistent queue", problem)

    async def _consume(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            entry = await queue.get()
            self._queue_gauge.set(queue.qsize())
            batch = entry.batch
            finished = False
            try:
                await self.send_with_retry(batch)
                finished = True
            finally:
                # Cancelled by the shutdown deadline: a persistent entry stays on disk for the next run.
                if finished or not queue.persistent:
                    await queue.done(entry)
                if finished:
                    batch.release()  # delivered or given up for good (counted): done either way

    # -- retry -------------------------------------------------------------------------------------------

    async def send_with_retry(self, batch: SpanBatch) -> ConsumerError | None:
        """Send one batch with retry and count the outcome. Returns the final error (already counted
        and logged), or None once sent."""
        self._active += 1
        self._in_flight_spans += batch.span_count
        self._idle.clear()
        try:
            return await self._send_with_retry(batch)
        finally:
            self._active -= 1
            self._in_flight_spans = max(self._in_flight_spans - batch.span_count, 0)
            if self._active == 0:
                self._idle.set()

    async def _send_with_retry(self, batch: SpanBatch) -> ConsumerError | None:
        retry = self._retry
        breaker = self._breaker
        waits = self._queue is not None  # a queue consumer waits out an open circuit; a caller does not
        backoff = Backoff(retry)
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            permit: Permit | None = None
            if breaker is not None:
                permit = breaker.try_acquire()
                if permit is None:
                    if not waits:
                        return self._give_up(batch, ConsumerError("circuit open", retriable=True),
                                             "the destination is unavailable (circuit open)")
                    permit, waited = await breaker.acquire()
                    started += waited  # waiting out an open circuit is not retry time
            try:
                err = await self._attempt(batch)
            except BaseException:
                if breaker is not None and permit is not None:
                    breaker.release(permit)
                raise
            if breaker is not None and permit is not None:
                breaker.record(permit, ok=err is None or not err.retriable)
            if err is None:
                return None
            if not err.retriable:
                return self._give_up(batch, err, "the error is not retryable")
            if not retry.enabled:
                return self._give_up(batch, err, "retry_on_failure is disabled")
            if breaker is not None and breaker.is_open and waits:
                self._logger.info(
                    "Exporter %s: sending %d spans failed, waiting for the circuit to half-open: %s",
                    self._name, batch.span_count, err,
                )
                continue  # the breaker's wait replaces the backoff
            delay = backoff.next_delay()
            if err.retry_after is not None and err.retry_after > 0:
                cap = max(RETRY_AFTER_CAP, float(retry.max_interval))
                delay = max(delay, min(err.retry_after, cap))
            elapsed = time.monotonic() - started
            if retry.max_elapsed_time > 0 and elapsed + delay > retry.max_elapsed_time:
                return self._give_up(
                    batch, err, f"no more retries left after {attempts} attempts in {elapsed:.1f}s"
                )
            self._logger.info(
                "Exporter %s: sending %d spans failed, will retry in %.3fs: %s",
                self._name, batch.span_count, delay, err,
            )
            await asyncio.sleep(delay)

    async def _attempt(self, batch: SpanBatch) -> ConsumerError | None:
        try:
            if self._timeout > 0:
                async with asyncio.timeout(self._timeout):
                    rejected = await self._send(batch)
            else:
                rejected = await self._send(batch)
        except ConsumerError as e:
            return e
        except TimeoutError:
            return ConsumerError(f"attempt timed out after {self._timeout:g}s", retriable=True)
        except Exception as e:
            self._logger.exception("Exporter %s: unexpected error while sending, will treat as retryable",
                                   self._name)
            return ConsumerError(f"unexpected error: {e!r}", retriable=True)
        rejected = min(max(rejected or 0, 0), batch.span_count)
        if rejected:
            self._failed.inc(rejected)
        self._sent.inc(batch.span_count - rejected)
        return None

    def _give_up(self, batch: SpanBatch, err: ConsumerError, why: str) -> ConsumerError:
        self._failed.inc(batch.span_count)
        self._logger.error(
            "Exporter %s: dropping %d spans, %s: %s", self._name, batch.span_count, why, err,
        )
        return err


def rejected_spans(logger: logging.Logger, name: str, response: ExportTraceServiceResponse, batch: SpanBatch) -> int:
    """The spans an OTLP backend rejected through ``partial_success`` (logged), for a send function's result."""
    partial = response.partial_success
    if partial.rejected_spans > 0 or partial.error_message:
        logger.warning(
            "Exporter %s: partial success, %d of %d spans rejected: %s",
            name, partial.rejected_spans, batch.span_count, partial.error_message,
        )
    return int(partial.rejected_spans)
