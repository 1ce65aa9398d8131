"""QueuedRetrySender: queueing, retry/backoff, give-up, drain, metrics, config."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

from collector.component import Settings
from collector.config import ConfigError, decode
from collector.errors import ConsumerError, PermanentError, RefusedError
from collector.exporters.helper import (
    Backoff,
    ExporterBaseConfig,
    QueueConfig,
    QueuedRetrySender,
    RetryConfig,
)
from collector.model import SpanBatch
from tests.collector.exporters import make_batch, make_settings, metric

FAST = RetryConfig(initial_interval=0.01, max_interval=0.02, max_elapsed_time=2.0)


class ScriptedSend:
    """A send callable that fails with the scripted errors in turn, then succeeds."""

    def __init__(self, *errors: BaseException, delay: float = 0.0) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[float, SpanBatch]] = []
        self.sent: list[SpanBatch] = []
        self.delay = delay
        self.gate: asyncio.Event | None = None

    async def __call__(self, batch: SpanBatch) -> int | None:
        self.calls.append((time.monotonic(), batch))
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(batch)
        return None


def sender(send: ScriptedSend, *, queue: QueueConfig | None = None, retry: RetryConfig = FAST,
           timeout: float = 1.0, name: str = "otlp") -> tuple[QueuedRetrySender, Settings]:
    settings = make_settings(name)
    qrs = QueuedRetrySender(settings, send, queue=queue or QueueConfig(num_consumers=2, queue_size=10),
                            retry=retry, timeout=timeout)
    return qrs, settings


async def test_queue_sends_and_counts() -> None:
    send = ScriptedSend()
    qrs, settings = sender(send)
    await qrs.start()
    for i in range(5):
        await qrs.consume_traces(make_batch(3, seed=i + 1))
    await qrs.drain()
    assert len(send.sent) == 5
    assert metric(settings, "otelcol_exporter_sent_spans") == 15
    assert metric(settings, "otelcol_exporter_queue_capacity") == 10
    assert metric(settings, "otelcol_exporter_queue_size") == 0


async def test_retry_then_success_honours_retry_after() -> None:
    send = ScriptedSend(
        ConsumerError("unavailable", retriable=True),
        ConsumerError("throttled", retriable=True, retry_after=0.2),
    )
    qrs, settings = sender(send)
    await qrs.start()
    await qrs.consume_traces(make_batch(2))
    await qrs.drain()
    assert len(send.calls) == 3
    assert send.calls[2][0] - send.calls[1][0] >= 0.19
    assert metric(settings, "otelcol_exporter_sent_spans") == 2
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 0


async def test_permanent_error_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    send = ScriptedSend(PermanentError("bad data"))
    qrs, settings = sender(send)
    await qrs.start()
    with caplog.at_level(logging.ERROR):
        await qrs.consume_traces(make_batch(4))
        await qrs.drain()
    assert len(send.calls) == 1
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 4
    assert "bad data" in caplog.text and "not retryable" in caplog.text


async def test_gives_up_after_max_elapsed_time(caplog: pytest.LogCaptureFixture) -> None:
    errors = [ConsumerError("down", retriable=True) for _ in range(1000)]
    send = ScriptedSend(*errors)
    retry = RetryConfig(initial_interval=0.02, max_interval=0.05, max_elapsed_time=0.3)
    qrs, settings = sender(send, retry=retry)
    await qrs.start()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await qrs.consume_traces(make_batch(5))
        await qrs.drain()
    assert time.monotonic() - started < 1.0
    assert 3 <= len(send.calls) < 30
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 5
    assert metric(settings, "otelcol_exporter_sent_spans") == 0
    assert "no more retries left" in caplog.text and "down" in caplog.text


async def test_queue_full_refuses_and_counts() -> None:
    send = ScriptedSend()
    send.gate = asyncio.Event()
    qrs, settings = sender(send, queue=QueueConfig(num_consumers=1, queue_size=2))
    await qrs.start()
    await qrs.consume_traces(make_batch(1, seed=1))
    await asyncio.sleep(0.01)  # the consumer takes it and blocks on the gate
    await qrs.consume_traces(make_batch(1, seed=2))
    await qrs.consume_traces(make_batch(1, seed=3))
    assert metric(settings, "otelcol_exporter_queue_size") == 2
    with pytest.raises(RefusedError) as info:
        await qrs.consume_traces(make_batch(7, seed=4))
    assert info.value.retriable
    assert metric(settings, "otelcol_exporter_enqueue_failed_spans") == 7
    send.gate.set()
    await qrs.drain()
    assert len(send.sent) == 3
    assert metric(settings, "otelcol_exporter_sent_spans") == 3


async def test_queue_disabled_raises_final_error() -> None:
    send = ScriptedSend(ConsumerError("flaky", retriable=True), PermanentError("rejected"))
    qrs, settings = sender(send, queue=QueueConfig(enabled=False))
    await qrs.start()
    with pytest.raises(PermanentError, match="rejected"):
        await qrs.consume_traces(make_batch(2))
    assert len(send.calls) == 2
    await qrs.consume_traces(make_batch(2))
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 2
    assert metric(settings, "otelcol_exporter_sent_spans") == 2
    assert metric(settings, "otelcol_exporter_queue_capacity") == 0
    await qrs.drain()


async def test_retry_disabled_fails_at_once() -> None:
    send = ScriptedSend(ConsumerError("down", retriable=True))
    qrs, settings = sender(send, queue=QueueConfig(enabled=False), retry=RetryConfig(enabled=False))
    with pytest.raises(ConsumerError, match="down"):
        await qrs.consume_traces(make_batch(2))
    assert len(send.calls) == 1
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 2


async def test_timeout_per_attempt_is_retried() -> None:
    send = ScriptedSend(delay=0.0)
    slow_once = {"n": 0}

    async def slow_first(batch: SpanBatch) -> int | None:
        slow_once["n"] += 1
        if slow_once["n"] == 1:
            await asyncio.sleep(5)
        return await send(batch)

    qrs = QueuedRetrySender(make_settings(), slow_first, queue=QueueConfig(enabled=False), retry=FAST,
                            timeout=0.05)
    await qrs.consume_traces(make_batch(1))
    assert slow_once["n"] == 2 and len(send.sent) == 1


async def test_unexpected_exception_is_retried_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    send = ScriptedSend(RuntimeError("bug in exporter"))
    qrs, _settings = sender(send, queue=QueueConfig(enabled=False))
    with caplog.at_level(logging.ERROR):
        await qrs.consume_traces(make_batch(1))
    assert len(send.sent) == 1
    assert any(r.exc_info and "bug in exporter" in str(r.exc_info[1]) for r in caplog.records)


async def test_partial_rejection_counted_as_failed() -> None:
    async def partial(batch: SpanBatch) -> int | None:
        return 2

    settings = make_settings()
    qrs = QueuedRetrySender(settings, partial, queue=QueueConfig(enabled=False), retry=FAST, timeout=1)
    await qrs.consume_traces(make_batch(5))
    assert metric(settings, "otelcol_exporter_sent_spans") == 3
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 2


async def test_drain_keeps_retrying_until_delivered() -> None:
    errors = [ConsumerError("down", retriable=True) for _ in range(10)]
    send = ScriptedSend(*errors)
    qrs, settings = sender(send)
    await qrs.start()
    for i in range(3):
        await qrs.consume_traces(make_batch(2, seed=i + 1))
    await qrs.drain()
    assert len(send.sent) == 3
    assert metric(settings, "otelcol_exporter_sent_spans") == 6
    with pytest.raises(RefusedError):
        await qrs.consume_traces(make_batch(1))
    assert metric(settings, "otelcol_exporter_enqueue_failed_spans") == 1
    await qrs.drain()  # idempotent


async def test_drain_cancelled_logs_what_was_left(caplog: pytest.LogCaptureFixture) -> None:
    errors = [ConsumerError("down", retriable=True) for _ in range(10_000)]
    send = ScriptedSend(*errors)
    retry = RetryConfig(initial_interval=0.01, max_interval=0.01, max_elapsed_time=0)
    qrs, _ = sender(send, queue=QueueConfig(num_consumers=1, queue_size=10), retry=retry)
    await qrs.start()
    for i in range(4):
        await qrs.consume_traces(make_batch(2, seed=i + 1))
    with caplog.at_level(logging.ERROR), pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await qrs.drain()
    assert caplog.text.count("6 spans queued (3 batches) and 2 in flight were held in memory and are lost") == 1
    assert "persistent" not in caplog.text


async def test_drain_before_start_reports_queued(caplog: pytest.LogCaptureFixture) -> None:
    qrs, _ = sender(ScriptedSend())
    await qrs.consume_traces(make_batch(3))
    with caplog.at_level(logging.ERROR):
        await qrs.drain()
    assert caplog.text.count("3 spans queued (1 batches) and 0 in flight were held in memory and are lost") == 1


def test_backoff_sequence() -> None:
    cfg = RetryConfig(initial_interval=1.0, randomization_factor=0.5, multiplier=2.0,
                      max_interval=5.0)
    backoff = Backoff(cfg, random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    for d, base in zip(delays, [1, 2, 4, 5, 5, 5], strict=True):
        assert base * 0.5 <= d <= base * 1.5
    flat = Backoff(RetryConfig(initial_interval=0.5, randomization_factor=0.0))
    assert flat.next_delay() == 0.5
    assert flat.next_delay() == 0.75


def test_config_defaults_and_errors() -> None:
    cfg = decode(ExporterBaseConfig, {})
    assert cfg.timeout == 5.0
    assert cfg.sending_queue == QueueConfig(enabled=True, num_consumers=10, queue_size=1000)
    r = cfg.retry_on_failure
    assert (r.enabled, r.initial_interval, r.randomization_factor, r.multiplier, r.max_interval,
            r.max_elapsed_time) == (True, 5.0, 0.5, 1.5, 30.0, 300.0)
    cfg = decode(ExporterBaseConfig, {"retry_on_failure": {"initial_interval": "10ms", "max_elapsed_time": 0}})
    assert cfg.retry_on_failure.initial_interval == 0.01 and cfg.retry_on_failure.max_elapsed_time == 0
    with pytest.raises(ConfigError) as info:
        decode(ExporterBaseConfig, {
            "sending_queue": {"queue_size": -1, "num_consumers": 0, "bogus": 1},
            "retry_on_failure": {"randomization_factor": 2, "max_interval": "10m"},
            "timeout": "soon",
        }, "exporters.otlp")
    text = str(info.value)
    assert "exporters.otlp.sending_queue.queue_size: must be >= 0" in text
    assert "exporters.otlp.sending_queue.num_consumers: must be positive" in text
    assert "exporters.otlp.sending_queue.bogus: unknown key" in text
    assert "exporters.otlp.retry_on_failure.randomization_factor: must be <= 1" in text
    assert "exporters.otlp.retry_on_failure.max_elapsed_time: must not be less than max_interval" in text
    assert "exporters.otlp.timeout: invalid duration" in text
