"""The memory_limiter processor: config checks, refusing above the soft limit, GC above the hard limit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from collector import Host, RefusedError, Telemetry
from collector.config import ConfigError, decode
from collector.consumer import Capabilities
from pipelines.memory_limiter import Config, MemoryLimiter, factory, total_memory
from tests.pipelines import RecordingConsumer, make_batch, make_settings, wait_for

MIB = 1024 * 1024
LABELS = {"processor": "memory_limiter"}


class FakeMemory:
    """An injectable memory reading (bytes) and a GC recorder."""

    def __init__(self, mib: int) -> None:
        self.mib = mib
        self.gc_calls = 0
        self.after_gc_mib: int | None = None

    def read(self) -> int:
        return self.mib * MIB

    def collect(self) -> int:
        self.gc_calls += 1
        if self.after_gc_mib is not None:
            self.mib = self.after_gc_mib
        return 0


def build(
    memory: FakeMemory, consumer: RecordingConsumer, **cfg: object
) -> tuple[MemoryLimiter, Telemetry]:
    telemetry = Telemetry()
    config = decode(Config, {"check_interval": "1s", "limit_mib": 100, **cfg})
    proc = MemoryLimiter(make_settings("memory_limiter", telemetry), config, consumer, read_memory=memory.read)
    proc.collect_garbage = memory.collect
    return proc, telemetry


def refused(telemetry: Telemetry) -> float:
    return telemetry.registry.get_sample_value("otelcol_processor_refused_spans_total", LABELS) or 0.0


# -- config ---------------------------------------------------------------------------------------


def test_config_defaults_and_limits() -> None:
    cfg = decode(Config, {"check_interval": "1s", "limit_mib": 4000})
    assert cfg.limits() == (4000 * MIB, 800 * MIB)  # spike defaults to 20 %
    cfg = decode(Config, {"check_interval": "1s", "limit_mib": 4000, "spike_limit_mib": 500})
    assert cfg.limits() == (4000 * MIB, 500 * MIB)
    cfg = decode(Config, {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 15})
    assert cfg.limits(1000 * MIB) == (800 * MIB, 150 * MIB)
    cfg = decode(Config, {"check_interval": "5s", "limit_percentage": 50})
    assert cfg.limits(1000 * MIB) == (500 * MIB, 100 * MIB)
    assert cfg.check_interval == 5.0
    memory = total_memory()
    assert memory is None or memory > 0


@pytest.mark.parametrize(
    ("raw", "path", "text"),
    [
        ({"check_interval": "1s", "limit_mib": 100, "spike_limit_mib": 100}, "spike_limit_mib", "smaller"),
        ({"check_interval": "1s", "limit_mib": 100, "spike_limit_mib": 200}, "spike_limit_mib", "smaller"),
        ({"check_interval": "1s"}, "", "must be greater than zero"),
        ({"check_interval": "1s", "limit_mib": 100, "limit_percentage": 50}, "", "not both"),
        ({"check_interval": "1s", "limit_mib": 100, "spike_limit_percentage": 5}, "", "not both"),
        ({"check_interval": "0s", "limit_mib": 100}, "check_interval", "> 0"),
        ({"limit_mib": 100}, "check_interval", "required"),
        ({"check_interval": "1s", "limit_percentage": 50, "spike_limit_percentage": 50},
         "spike_limit_percentage", "smaller"),
        ({"check_interval": "1s", "limit_percentage": 101}, "limit_percentage", "<= 100"),
        ({"check_interval": "1s", "limit_mib": 100, "min_gc_interval_when_hard_limited": "20s"},
         "min_gc_interval_when_soft_limited", "larger"),
    ],
)
def test_config_errors(raw: dict[str, object], path: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, raw, "processors.memory_limiter")
    want = "processors.memory_limiter" + (f".{path}" if path else "")
    assert any(i.path == want and text in i.message for i in info.value.issues), info.value


def test_factory_uses_process_rss() -> None:
    config = decode(Config, {"check_interval": "1s", "limit_mib": 1 << 20})
    proc = factory.create(make_settings("memory_limiter"), config, RecordingConsumer())
    assert isinstance(proc, MemoryLimiter)
    assert proc.capabilities() == Capabilities()
    assert proc.read_memory() > 0
    proc.check_memory()
    assert not proc.refusing


# -- behaviour ------------------------------------------------------------------------------------


async def test_passes_batches_through_below_soft_limit() -> None:
    memory, consumer = FakeMemory(50), RecordingConsumer()
    proc, telemetry = build(memory, consumer)
    proc.check_memory()
    batch = make_batch(3)
    await proc.consume_traces(batch)
    assert consumer.batches == [batch]
    assert consumer.batches[0] is batch
    assert refused(telemetry) == 0
    assert memory.gc_calls == 0


async def test_refuses_above_soft_limit_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    memory, consumer = FakeMemory(85), RecordingConsumer()
    proc, telemetry = build(memory, consumer)  # limit 100 MiB, spike 20 MiB: soft limit 80 MiB
    with caplog.at_level(logging.INFO):
        proc.check_memory()
    assert proc.refusing
    assert memory.gc_calls == 1  # one GC when first going above the soft limit, as OTel does
    assert "refusing data" in caplog.text
    with pytest.raises(RefusedError) as info:
        await proc.consume_traces(make_batch(4))
    assert info.value.retriable
    assert "memory usage above soft limit" in str(info.value)
    assert str(info.value).endswith("(memory_limiter)")
    with pytest.raises(RefusedError):
        await proc.consume_traces(make_batch(2))
    assert refused(telemetry) == 6
    assert consumer.batches == []
    proc.check_memory()
    assert memory.gc_calls == 1  # no second soft-limit GC within min_gc_interval_when_soft_limited
    memory.mib = 60
    with caplog.at_level(logging.INFO):
        proc.check_memory()
    assert not proc.refusing
    assert "accepting data" in caplog.text
    await proc.consume_traces(make_batch(1))
    assert consumer.span_count == 1


async def test_gc_when_above_hard_limit() -> None:
    memory, consumer = FakeMemory(120), RecordingConsumer()
    memory.after_gc_mib = 40
    proc, _ = build(memory, consumer)
    proc.check_memory()
    assert memory.gc_calls == 1
    assert not proc.refusing  # GC brought usage back below the soft limit
    memory.after_gc_mib = 95
    memory.mib = 130
    proc.check_memory()
    assert memory.gc_calls == 2
    assert proc.refusing


async def test_soft_limit_gc_can_avoid_refusing() -> None:
    memory, consumer = FakeMemory(90), RecordingConsumer()
    memory.after_gc_mib = 70
    proc, _ = build(memory, consumer, min_gc_interval_when_soft_limited="0s")
    proc.check_memory()
    assert memory.gc_calls == 1
    assert not proc.refusing


async def test_background_check_and_lifecycle() -> None:
    memory, consumer = FakeMemory(10), RecordingConsumer()
    proc, _ = build(memory, consumer, check_interval="10ms")
    await proc.shutdown()  # safe before start
    proc, _ = build(memory, consumer, check_interval="10ms")
    host = Host()
    host.add_holder(lambda: 5)  # a trace buffer holding spans
    await proc.start(host)
    try:
        assert not proc.refusing
        memory.mib = 90
        await wait_for(lambda: proc.refusing, within=1.0)
        memory.mib = 10
        await wait_for(lambda: not proc.refusing, within=1.0)
    finally:
        await proc.shutdown()
        await proc.shutdown()
    memory.mib = 90
    await asyncio.sleep(0.03)
    assert not proc.refusing  # the check task is gone


async def test_percentage_limits() -> None:
    telemetry = Telemetry()
    config = decode(Config, {"check_interval": "1s", "limit_percentage": 50, "spike_limit_percentage": 10})
    memory = FakeMemory(0)
    proc = MemoryLimiter(
        make_settings("memory_limiter", telemetry), config, RecordingConsumer(),
        read_memory=memory.read, total_memory_bytes=1000 * MIB,
    )
    assert (proc.hard_limit, proc.soft_limit) == (500 * MIB, 400 * MIB)
