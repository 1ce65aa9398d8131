"""The batch processor: triggers, splitting, order, retries without loss, refusal when full, shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from collector import Host, RefusedError, SpanBatch, Telemetry
from collector.config import ConfigError, decode
from pipelines.batch import BatchProcessor, Config, factory, split_batch
from tests.pipelines import RecordingConsumer, flat_spans, make_batch, make_settings, wait_for

LABELS = {"processor": "batch"}


def build(
    consumer: RecordingConsumer, telemetry: Telemetry | None = None, **cfg: object
) -> tuple[BatchProcessor, Telemetry]:
    telemetry = telemetry or Telemetry()
    config = decode(Config, cfg)
    proc = factory.create(make_settings("batch", telemetry), config, consumer)
    assert isinstance(proc, BatchProcessor)
    return proc, telemetry


def sample(telemetry: Telemetry, name: str) -> float:
    value = telemetry.registry.get_sample_value(name, LABELS)
    return 0.0 if value is None else value


# -- config ---------------------------------------------------------------------------------------


def test_defaults_match_otel() -> None:
    cfg = decode(Config, {})
    assert (cfg.send_batch_size, cfg.send_batch_max_size, cfg.timeout) == (8192, 0, 0.2)
    assert cfg.max_pending_spans is None
    assert cfg.pending_limit == 10 * 8192
    assert decode(Config, {"send_batch_size": 100, "send_batch_max_size": 5000}).pending_limit == 10000
    assert decode(Config, {"max_pending_spans": 123, "send_batch_size": 10}).pending_limit == 123
    assert decode(Config, {"send_batch_size": 0}).pending_limit == 10 * 8192
    assert decode(Config, {"timeout": "1s", "send_batch_size": 10, "send_batch_max_size": 10}).timeout == 1.0


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"send_batch_size": 100, "send_batch_max_size": 50}, "send_batch_max_size"),
        ({"timeout": "-1s"}, "timeout"),
        ({"send_batch_size": -1}, "send_batch_size"),
        ({"max_pending_spans": 0}, "max_pending_spans"),
        ({"max_pending_spans": 10, "send_batch_size": 100}, "max_pending_spans"),
        ({"send_batch_sized": 1}, "send_batch_sized"),
    ],
)
def test_config_errors(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, raw, "processors.batch")
    assert any(issue.path == f"processors.batch.{where}" for issue in info.value.issues), info.value


# -- split ----------------------------------------------------------------------------------------


def test_split_keeps_every_span_resource_and_scope() -> None:
    batch = make_batch(shape=[[3, 0, 5], [], [1], [7, 2]])
    expected = flat_spans([batch])
    parts = split_batch(SpanBatch.from_bytes(batch.to_bytes()), 4)
    assert [p.span_count for p in parts] == [4, 4, 4, 4, 2]
    for p in parts:
        p.recount()
    assert [p.span_count for p in parts] == [4, 4, 4, 4, 2]
    assert flat_spans(parts) == expected
    assert split_batch(batch, 18) == [batch]


# -- triggers -------------------------------------------------------------------------------------


async def test_size_trigger_merges_wire_bytes() -> None:
    consumer = RecordingConsumer()
    proc, telemetry = build(consumer, send_batch_size=10, timeout="10s")
    await proc.start(Host())
    try:
        batches = [make_batch(3) for _ in range(4)]
        for b in batches[:3]:
            await proc.consume_traces(b)
        await asyncio.sleep(0.02)
        assert consumer.batches == []
        assert sample(telemetry, "otelcol_processor_batch_pending_spans") == 9
        await proc.consume_traces(batches[3])
        await wait_for(lambda: consumer.span_count == 12)
        assert len(consumer.batches) == 1
        assert consumer.batches[0].to_bytes() == b"".join(b.to_bytes() for b in batches)
        assert sample(telemetry, "otelcol_processor_batch_batch_size_trigger_send_total") == 1
        assert sample(telemetry, "otelcol_processor_batch_timeout_trigger_send_total") == 0
        assert sample(telemetry, "otelcol_processor_batch_batch_send_size_count") == 1
        assert sample(telemetry, "otelcol_processor_batch_batch_send_size_sum") == 12
        assert sample(telemetry, "otelcol_processor_batch_pending_spans") == 0
    finally:
        await proc.shutdown()


async def test_timeout_trigger() -> None:
    consumer = RecordingConsumer()
    proc, telemetry = build(consumer, send_batch_size=1000, timeout="50ms")
    await proc.start(Host())
    try:
        await proc.consume_traces(make_batch(2))
        await proc.consume_traces(make_batch(3))
        await asyncio.sleep(0.01)
        assert consumer.batches == []
        await wait_for(lambda: consumer.span_count == 5, within=1.0)
        assert len(consumer.batches) == 1
        assert sample(telemetry, "otelcol_processor_batch_timeout_trigger_send_total") == 1
        assert sample(telemetry, "otelcol_processor_batch_batch_size_trigger_send_total") == 0
        assert sample(telemetry, "otelcol_processor_batch_batch_send_size_sum") == 5
    finally:
        await proc.shutdown()


async def test_timeout_zero_sends_after_each_consume() -> None:
    consumer = RecordingConsumer()
    proc, _ = build(consumer, send_batch_size=1000, timeout=0)
    await proc.start(Host())
    try:
        await proc.consume_traces(make_batch(2))
        await wait_for(lambda: consumer.span_count == 2)
        await proc.consume_traces(make_batch(1))
        await wait_for(lambda: consumer.span_count == 3)
        assert [b.span_count for b in consumer.batches] == [2, 1]
    finally:
        await proc.shutdown()


async def test_max_size_split_preserves_every_span() -> None:
    consumer = RecordingConsumer()
    proc, telemetry = build(consumer, send_batch_size=5, send_batch_max_size=7, timeout="100ms")
    await proc.start(Host())
    try:
        inputs = [make_batch(shape=[[4, 2], [3]]), make_batch(shape=[[1], [6, 0, 5]]), make_batch(2)]
        expected = flat_spans(inputs)
        for b in inputs:
            await proc.consume_traces(b)
        await wait_for(lambda: consumer.span_count == 23, within=2.0)
        assert [b.span_count for b in consumer.batches] == [7, 7, 7, 2]
        for b in consumer.batches:
            b.recount()
        assert [b.span_count for b in consumer.batches] == [7, 7, 7, 2]
        assert flat_spans(consumer.batches) == expected
        # The 2-span tail waited for the timeout instead of going out with the size trigger.
        assert sample(telemetry, "otelcol_processor_batch_timeout_trigger_send_total") == 1
        assert sample(telemetry, "otelcol_processor_batch_batch_send_size_count") == 4
    finally:
        await proc.shutdown()


async def test_order_preserved_and_one_send_at_a_time() -> None:
    consumer = RecordingConsumer(delay=0.002)
    proc, _ = build(consumer, send_batch_size=7, send_batch_max_size=9, timeout="5ms")
    await proc.start(Host())
    try:
        inputs = [make_batch(n % 4 + 1) for n in range(60)]
        for b in inputs:
            while True:  # a client that backs off while the processor is full
                try:
                    await proc.consume_traces(b)
                    break
                except RefusedError:
                    await asyncio.sleep(0.001)
        total = sum(b.span_count for b in inputs)
        await wait_for(lambda: consumer.span_count == total)
        assert flat_spans(consumer.batches) == flat_spans(inputs)
        assert consumer.max_in_flight == 1
        assert all(b.span_count <= 9 for b in consumer.batches)
    finally:
        await proc.shutdown()


# -- errors and backpressure ----------------------------------------------------------------------


async def test_retriable_failure_is_retried_without_loss() -> None:
    consumer = RecordingConsumer(refuse_times=3, retry_after=0.01)
    proc, telemetry = build(consumer, send_batch_size=4, timeout="20ms")
    await proc.start(Host())
    try:
        inputs = [make_batch(2) for _ in range(5)]
        for b in inputs:
            await proc.consume_traces(b)
        await wait_for(lambda: consumer.span_count == 10)
        assert consumer.refusals == 3
        assert flat_spans(consumer.batches) == flat_spans(inputs)
        assert sample(telemetry, "otelcol_processor_dropped_spans_total") == 0
        assert sample(telemetry, "otelcol_processor_batch_pending_spans") == 0
    finally:
        await proc.shutdown()


async def test_permanent_failure_drops_that_batch_only(caplog: pytest.LogCaptureFixture) -> None:
    consumer = RecordingConsumer(permanent=True)
    proc, telemetry = build(consumer, send_batch_size=3, timeout="10s")
    await proc.start(Host())
    try:
        with caplog.at_level(logging.ERROR):
            await proc.consume_traces(make_batch(3))
            await wait_for(lambda: sample(telemetry, "otelcol_processor_dropped_spans_total") == 3)
        assert "rejected 3 spans permanently" in caplog.text
        consumer.permanent = False
        later = make_batch(3)
        await proc.consume_traces(later)
        await wait_for(lambda: consumer.span_count == 3)
        assert flat_spans(consumer.batches) == flat_spans([later])
        assert proc.pending_spans == 0
    finally:
        await proc.shutdown()


async def test_refuses_when_max_pending_reached_and_accepts_after_drain() -> None:
    consumer = RecordingConsumer()
    consumer.gate.clear()
    proc, telemetry = build(consumer, send_batch_size=5, timeout="10ms", max_pending_spans=10)
    await proc.start(Host())
    try:
        accepted = [make_batch(4), make_batch(4), make_batch(4)]
        for b in accepted:
            await proc.consume_traces(b)
        assert proc.pending_spans == 12
        with pytest.raises(RefusedError) as info:
            await proc.consume_traces(make_batch(2))
        assert info.value.retriable
        assert sample(telemetry, "otelcol_processor_refused_spans_total") == 2
        assert sample(telemetry, "otelcol_processor_batch_pending_spans") == 12
        consumer.gate.set()
        await wait_for(lambda: proc.pending_spans == 0)
        late = make_batch(2)
        await proc.consume_traces(late)
        await wait_for(lambda: consumer.span_count == 14)
        assert flat_spans(consumer.batches) == flat_spans([*accepted, late])
    finally:
        await proc.shutdown()


# -- lifecycle ------------------------------------------------------------------------------------


async def test_shutdown_flushes_everything() -> None:
    consumer = RecordingConsumer(refuse_times=1)
    proc, _ = build(consumer, send_batch_size=1000, timeout="10s")
    await proc.start(Host())
    inputs = [make_batch(3), make_batch(4)]
    for b in inputs:
        await proc.consume_traces(b)
    await proc.shutdown()
    assert flat_spans(consumer.batches) == flat_spans(inputs)
    assert proc.pending_spans == 0
    await proc.shutdown()  # idempotent
    with pytest.raises(RefusedError):
        await proc.consume_traces(make_batch(1))


async def test_shutdown_before_start_flushes_and_is_safe() -> None:
    consumer = RecordingConsumer()
    proc, _ = build(consumer)
    await proc.shutdown()
    proc2, _ = build(RecordingConsumer())
    batch = make_batch(2)
    await proc2.consume_traces(batch)
    await proc2.shutdown()
    assert consumer.batches == []


async def test_shutdown_before_start_sends_buffered() -> None:
    consumer = RecordingConsumer()
    proc, _ = build(consumer, timeout="10s")
    batch = make_batch(2)
    await proc.consume_traces(batch)
    await proc.shutdown()
    assert flat_spans(consumer.batches) == flat_spans([batch])


async def test_cancelled_shutdown_logs_spans_left(caplog: pytest.LogCaptureFixture) -> None:
    consumer = RecordingConsumer(refuse_times=10**6, retry_after=0.01)
    proc, _ = build(consumer, send_batch_size=1000, timeout="10s")
    await proc.start(Host())
    await proc.consume_traces(make_batch(5))
    with caplog.at_level(logging.ERROR), pytest.raises(TimeoutError):
        await asyncio.wait_for(proc.shutdown(), 0.1)
    assert "5 spans were not sent" in caplog.text
    await asyncio.sleep(0.02)
    assert consumer.refusals > 1
