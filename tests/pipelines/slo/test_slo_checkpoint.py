"""The slo stage's state through the file_storage extension: a restart in the middle of a burn keeps the
error budget, the burn rates, the firing alerts (and since when) and the causes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from collector import ComponentID, Host, Telemetry
from collector.config import decode
from collector.errors import ComponentStartError
from collector.extensions.file_storage import FileStorageConfig, FileStorageExtension
from pipelines.slo import SloProcessor
from pipelines.slo.burn import ObjectiveStatus
from tests.pipelines.slo.helpers import Clock, processor, settings, slo_doc

PER_MINUTE = 600_000  # 10,000 signal spans a second


async def storage_host(tmp_path: Path) -> Host:
    host = Host()
    ext = FileStorageExtension(settings(name="file_storage"),
                               decode(FileStorageConfig, {"directory": str(tmp_path), "fsync": True}))
    await ext.start(host)
    host.extensions[ComponentID("file_storage")] = ext
    return host


def feed(proc: SloProcessor, clock: Clock, minutes: int, error_ratio: float, cause: str = "orders-db") -> None:
    """Aggregated counts each simulated minute (10,000 signal spans a second)."""
    for _ in range(minutes):
        bad = round(PER_MINUTE * error_ratio)
        proc.record("checkout", PER_MINUTE - bad, bad, {cause: bad})
        clock.advance(60)


def summary(status: ObjectiveStatus) -> tuple[object, ...]:
    return (round(status.budget_remaining, 9), {k: round(v, 6) for k, v in status.burn_rates.items()},
            [(str(a.spec), a.firing, a.burn.since if a.burn else None,
              a.burn.dominant.cause if a.burn and a.burn.dominant else None) for a in status.alerts])


async def test_a_restart_in_the_middle_of_a_burn_keeps_budget_and_burn_state(tmp_path: Path) -> None:
    clock = Clock()
    config = {"storage": "file_storage", "checkpoint_interval": "1h"}
    first = processor([slo_doc("checkout")], clock, **config)
    await first.start(await storage_host(tmp_path))
    feed(first, clock, 24 * 60, 0.0)  # a clean day
    feed(first, clock, 50, 0.02)  # 2 % errors for 50 minutes: the 14.4x page fires
    (before,) = first.evaluate()
    assert [a.firing for a in before.alerts] == [True, False, False]
    await first.shutdown()  # writes the checkpoint
    state = json.loads((tmp_path / "processor_slo" / "state.json").read_text())
    assert state["version"] == 1 and set(state["objectives"]) == {"checkout"}

    telemetry = Telemetry()
    second = processor([slo_doc("checkout")], clock, telemetry, **config)  # a new process, same clock
    await second.start(await storage_host(tmp_path))
    try:
        (after,) = second.statuses  # evaluated at start, from the restored state
        assert summary(after) == summary(before)
        assert after.alerts[0].burn is not None and after.alerts[0].burn.service == "orders-db"
        assert after.budget_remaining < 0.9  # the day's budget spent so far is remembered
        # the burn goes on after the restart: still firing, then recovery resolves it
        feed(second, clock, 5, 0.02)
        assert second.evaluate()[0].alerts[0].firing is True
        feed(second, clock, 3, 0.0)
        assert [a.firing for a in second.evaluate()[0].alerts] == [False, False, False]
        assert telemetry.registry.get_sample_value("tracetriage_slo_events_total",
                                                   {"slo": "checkout", "outcome": "good"}) == 8 * PER_MINUTE - 5 * 12000
    finally:
        await second.shutdown()


async def test_checkpoints_are_written_periodically(tmp_path: Path) -> None:
    clock = Clock()
    telemetry = Telemetry()
    proc = processor([slo_doc("checkout")], clock, telemetry, storage="file_storage", checkpoint_interval="50ms")
    await proc.start(await storage_host(tmp_path))
    try:
        feed(proc, clock, 3, 0.01)
        path = tmp_path / "processor_slo" / "state.json"

        def written() -> float:
            return telemetry.registry.get_sample_value("tracetriage_slo_checkpoints_total",
                                                       {"processor": "slo", "outcome": "ok"}) or 0

        for _ in range(750):  # up to 15 s: a loaded machine may be slow to run the checkpoint task
            if written() >= 1:
                break
            await asyncio.sleep(0.02)
        assert written() >= 1
        saved = json.loads(path.read_text())["objectives"]["checkout"]
        assert len(saved["series"]["minutes"]) == 3
    finally:
        await proc.shutdown()


async def test_changed_objectives_and_broken_checkpoints_start_fresh(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    host = await storage_host(tmp_path)
    first = processor([slo_doc("checkout")], clock, storage="file_storage")
    await first.start(host)
    feed(first, clock, 10, 0.05)
    await first.shutdown()
    # what "checkout" counts changed (another span name): its saved state is not put back
    other = processor([slo_doc("checkout", span_name="submit_order")], clock, storage="file_storage")
    await other.start(host)
    assert other.series("checkout").sums(clock.now, 3600) == (0, 0)
    assert "its selector or SLI changed" in caplog.text
    await other.shutdown()
    (tmp_path / "processor_slo" / "state.json").write_text("{not json")
    broken = processor([slo_doc("checkout")], clock, storage="file_storage")
    await broken.start(host)
    assert "is not valid JSON" in caplog.text and "starting without the saved state" in caplog.text
    await broken.shutdown()


async def test_storage_must_name_a_file_storage_extension(tmp_path: Path) -> None:
    proc = processor([slo_doc("checkout")], Clock(), storage="file_storage/missing")
    with pytest.raises(ComponentStartError, match="storage refers to extension 'file_storage/missing'"):
        await proc.start(await storage_host(tmp_path))
    await proc.shutdown()
    await proc.shutdown()  # idempotent
