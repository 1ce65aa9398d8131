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


# -- recovery: what is held, the process's floor ----------------------------------------------------------


def gauge(telemetry: Telemetry, name: str) -> float:
    labels = {"processor": "memory_limiter", "pipeline": "traces"}
    return telemetry.registry.get_sample_value(f"tracetriage_memory_limiter_{name}", labels) or 0.0


async def test_never_refuses_while_nothing_is_held(caplog: pytest.LogCaptureFixture) -> None:
    memory, consumer = FakeMemory(10), RecordingConsumer()
    held = [0]
    proc, telemetry = build(memory, consumer)  # limit 100, spike 20: soft limit 80 MiB
    proc.held = lambda: held[0]
    await proc.start(Host())
    try:
        memory.mib = 90  # above the soft limit, and the GC frees nothing: but nothing is held
        with caplog.at_level(logging.WARNING):
            proc.check_memory()
        assert not proc.refusing
        assert memory.gc_calls == 2  # at start, and now: with nothing held it measures the floor at once
        # The floor (90) leaves data less than a spike below the soft limit: limits move up by 90 - 60.
        assert (proc.hard_limit, proc.soft_limit) == (130 * MIB, 110 * MIB)
        assert "the drained process uses 90 MiB" in caplog.text
        assert gauge(telemetry, "floor_bytes") == 90 * MIB
        assert gauge(telemetry, "soft_limit_bytes") == 110 * MIB
        await proc.consume_traces(make_batch(2))
        assert consumer.span_count == 2
        held[0] = 500  # data held again, above the moved soft limit: refused
        memory.mib = 115
        proc.check_memory()
        assert proc.refusing
        assert gauge(telemetry, "refusing") == 1
        assert gauge(telemetry, "held_items") == 500
    finally:
        await proc.shutdown()


async def test_trims_while_refusing_and_resumes_once_drained() -> None:
    memory, consumer = FakeMemory(10), RecordingConsumer()
    held = [0]
    proc, telemetry = build(memory, consumer, check_interval="10ms")
    proc.held = lambda: held[0]
    await proc.start(Host())
    try:
        held[0], memory.mib = 1000, 90
        await wait_for(lambda: proc.refusing, within=1.0)
        gcs = memory.gc_calls
        await asyncio.sleep(0.05)
        assert memory.gc_calls == gcs  # still held: the next soft-limit GC waits its min interval (10 s)
        # The burst drains; the trim after it returns what the data used.
        memory.after_gc_mib = 40
        held[0] = 0
        await wait_for(lambda: not proc.refusing, within=0.1)  # within a few check intervals
        assert memory.gc_calls == gcs + 1
        assert (proc.hard_limit, proc.soft_limit) == (100 * MIB, 80 * MIB)  # the floor left room
        assert gauge(telemetry, "floor_bytes") == 40 * MIB
        assert gauge(telemetry, "trims_total") == memory.gc_calls - 1  # the one at start is not counted
    finally:
        await proc.shutdown()


async def test_baseline_near_the_limit_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    memory, consumer = FakeMemory(75), RecordingConsumer()
    proc, telemetry = build(memory, consumer)
    host = Host()
    host.add_holder(lambda: 0)
    with caplog.at_level(logging.WARNING):
        await proc.start(host)
    try:
        assert "the idle process uses 75 MiB" in caplog.text
        assert "Size limit_mib at least 116 MiB" in caplog.text
        assert proc.baseline == 75 * MIB
        assert gauge(telemetry, "baseline_bytes") == 75 * MIB
        assert (proc.hard_limit, proc.soft_limit) == (115 * MIB, 95 * MIB)
        assert not proc.refusing
        # The floor falls (memory given back later): the limits go back to the configured ones, and no
        # further than that.
        memory.mib = 30
        proc.check_memory()
        assert (proc.hard_limit, proc.soft_limit) == (100 * MIB, 80 * MIB)
    finally:
        await proc.shutdown()


async def test_limits_never_move_past_the_memory_available() -> None:
    telemetry = Telemetry()
    config = decode(Config, {"check_interval": "1s", "limit_mib": 100})
    memory = FakeMemory(95)
    proc = MemoryLimiter(make_settings("memory_limiter", telemetry), config, RecordingConsumer(),
                         read_memory=memory.read, total_memory_bytes=110 * MIB, held=lambda: 0)
    proc.collect_garbage = memory.collect
    await proc.start(Host())
    try:
        assert (proc.hard_limit, proc.soft_limit) == (110 * MIB, 90 * MIB)
    finally:
        await proc.shutdown()


def test_in_flight_batches_count_as_held() -> None:
    memory = FakeMemory(90)
    proc, _ = build(memory, RecordingConsumer())
    proc.held = lambda: 0
    proc._in_flight = 1  # a batch passed on and not back yet
    proc.check_memory()
    assert proc.refusing


@pytest.mark.parametrize(("limit", "spike", "warned"), [(300, 60, True), (600, 60, False), (400, 0, True)])
def test_config_warns_about_a_limit_an_idle_process_nearly_fills(limit: int, spike: int, warned: bool) -> None:
    cfg = decode(Config, {"check_interval": "1s", "limit_mib": limit, "spike_limit_mib": spike})
    notes = list(cfg.warnings())
    assert bool(notes) is warned
    if warned:
        assert notes[0][0] == "limit_mib"
        assert "Sizing" in notes[0][1]
