"""Silences: the file format and its errors (with field paths, refused at config load), activation and
expiry on a fake clock with pages delivered to a real webhook server, reloads (a new silence, an invalid
file that keeps the old ones, a file that goes or comes), and the processor end to end with its reload
task."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from collector import Host, Telemetry
from collector.config import ConfigError, decode
from pipelines.alert_routing import Config
from pipelines.alert_routing.alerts import rfc3339
from pipelines.alert_routing.metrics import AlertMetrics
from pipelines.alert_routing.silences import Silences, SilencesError, parse_silences, parse_time, read_silences
from tests.pipelines.alert_routing.helpers import (
    CaptureServer,
    EngineOnWebhook,
    FakeClock,
    build,
    failed_trace,
    make_failure,
    paged,
    sample,
    write_catalog,
    write_silences,
)

WAIT, INTERVAL, REPEAT, RESOLVE = 10.0, 60.0, 3600.0, 300.0
TIMERS = {"group_wait": f"{WAIT}s", "group_interval": f"{INTERVAL}s", "repeat_interval": f"{REPEAT}s",
          "resolve_timeout": f"{RESOLVE}s"}
LABEL = {"processor": "alert_routing"}


def silence(matchers: list[str], starts: float, ends: float, **extra: Any) -> dict[str, Any]:
    return {"matchers": matchers, "starts_at": rfc3339(starts), "ends_at": rfc3339(ends), "created_by": "alice",
            "comment": "maintenance", **extra}


# -- the file ---------------------------------------------------------------------------------------------


def test_file_format() -> None:
    text = """
- id: db-maintenance
  matchers: ['team="payments"', 'service=~"postgres.*"']
  starts_at: 2025-06-01T22:00:00Z
  ends_at: 2025-06-02T02:00:00.123456789+02:00
  created_by: alice
  comment: failover drill
- matchers: [service="cart"]
  starts_at: "2025-06-01 22:00:00z"
  ends_at: 2025-06-01T23:00:00Z
  created_by: bob
  comment: noisy
"""
    first, second = parse_silences(text, "silences.yaml")
    assert first.id == "db-maintenance" and (first.created_by, first.comment) == ("alice", "failover drill")
    assert first.starts_at == parse_time("2025-06-01T22:00:00Z") == 1748815200.0
    assert first.ends_at == pytest.approx(first.starts_at + 2 * 3600 + 0.123456)  # 02:00+02:00 = 00:00Z
    assert first.matches({"team": "payments", "service": "postgres-eu"})
    assert not first.matches({"team": "payments", "service": "payment"})
    assert len(second.id) == 12 and second.id == parse_silences(text, "x")[1].id  # derived, stable
    assert second.starts_at == first.starts_at
    # [starts_at, ends_at): active from the first instant, expired at the last.
    assert [second.state(t) for t in (first.starts_at - 1, first.starts_at, second.ends_at - 1e-3,
                                      second.ends_at)] == ["pending", "active", "active", "expired"]
    assert parse_silences("", "empty.yaml") == () and parse_silences("[]", "empty.yaml") == ()


@pytest.mark.parametrize(
    ("entry", "where", "words"),
    [
        ({"matchers": ["team~x"]}, "[0].matchers[0]", "invalid matcher"),
        ({"matchers": ['service=~"("']}, "[0].matchers[0]", "does not compile"),
        ({"matchers": []}, "[0].matchers", "must not be empty"),
        ({"matchers": ['team=""', 'service=~".*"']}, "[0].matchers", "must not match the empty string"),
        ({"starts_at": "2025-06-01T22:00:00"}, "[0].starts_at", "RFC 3339 time with a zone"),
        ({"starts_at": "2025-06-01"}, "[0].starts_at", "RFC 3339"),
        ({"ends_at": "2025-13-01T00:00:00Z"}, "[0].ends_at", "invalid time"),
        ({"ends_at": "2025-05-01T00:00:00Z"}, "[0].ends_at", "must not be before starts_at"),
        ({"created_by": ""}, "[0].created_by", "must not be empty"),
        ({"comment": None}, "[0].comment", "must be a string"),
        ({"startsAt": "2025-06-01T22:00:00Z"}, "[0].startsAt", "unknown key"),
    ],
)
def test_invalid_entries_name_the_field(entry: dict[str, Any], where: str, words: str) -> None:
    good = {"matchers": ['team="payments"'], "starts_at": "2025-06-01T22:00:00Z",
            "ends_at": "2025-06-02T00:00:00Z", "created_by": "alice", "comment": "why"}
    with pytest.raises(SilencesError) as info:
        parse_silences(yaml.safe_dump([{**good, **entry}]), "s.yaml")
    assert any(p == where and words in m for p, m in info.value.problems), info.value.problems
    assert str(info.value).startswith("silences file s.yaml: ")


def test_whole_file_errors() -> None:
    cases = {"{a: 1}": "must be a list of silences", "- [": "not valid YAML", "- 3": "must be a mapping"}
    for text, words in cases.items():
        with pytest.raises(SilencesError, match=words):
            parse_silences(text, "s.yaml")
    dup = [silence(['team="a"'], 0, 1, id="x"), silence(['team="b"'], 0, 1, id="x")]
    with pytest.raises(SilencesError) as info:
        parse_silences(yaml.safe_dump(dup), "s.yaml")
    assert info.value.problems == [("[1].id", "id 'x' is already used by [0]")]


def test_shipped_example_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "configs" / "silences.yaml"
    silences = read_silences(str(example))
    assert len(silences) == 2 and silences[0].id == "payments-db-failover"


def test_invalid_file_is_refused_at_config_load(tmp_path: Path) -> None:
    base: dict[str, Any] = {"route": {"receiver": "r"}, "receivers": [{"name": "r", "webhook": {"url": "http://x"}}]}
    path = write_silences(tmp_path / "silences.yaml", [silence(['team="a"'], 100, 200),
                                                       silence(['team="b"'], 200, 100)])
    with pytest.raises(ConfigError) as info:
        decode(Config, {**base, "silences": {"file": str(path)}}, "processors.alert_routing")
    issue = info.value.issues[0]
    assert issue.path == "processors.alert_routing.silences.file"
    assert issue.message.startswith(f"{path}: [1].ends_at: must not be before starts_at")
    # A file that does not exist (yet) is accepted; a valid one too.
    cfg = decode(Config, {**base, "silences": {"file": str(tmp_path / "later.yaml"), "reload_interval": "5s"}})
    assert (cfg.silences.file, cfg.silences.reload_interval) == (str(tmp_path / "later.yaml"), 5.0)
    write_silences(path, [silence(['team="a"'], 100, 200)])
    assert decode(Config, {**base, "silences": {"file": str(path)}}).silences.reload_interval == 30.0
    assert decode(Config, base).silences.file == ""


# -- activation and expiry, delivered to a webhook --------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def states(h: EngineOnWebhook) -> dict[str, float]:
    return {s: sample(h.telemetry, "tracetriage_alert_silences", **LABEL, state=s)
            for s in ("active", "pending", "expired")}


async def test_silence_activation_and_expiry(server: CaptureServer, session: aiohttp.ClientSession,
                                             tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    path = write_silences(tmp_path / "silences.yaml",
                          [silence(['team="payments"'], clock.wall() + 100, clock.wall() + 400, id="maint")])
    h = await EngineOnWebhook.start(server, session, TIMERS, str(path), clock)
    try:
        assert states(h) == {"active": 0, "pending": 1, "expired": 0}
        h.fail("payment")  # before the silence: paged
        h.advance(WAIT)
        assert [a["service"] for a in paged(await h.delivered())] == ["payment"]
        # From t=1100 the silence is active: cart (same team) fails on and is not paged; payment, quiet since
        # t=1000, is still resolved (a resolve is never silenced).
        while h.clock.now < 1400:
            if h.clock.now >= 1100:
                h.fail("cart")
            h.advance(10)
            if h.clock.now == 1200:
                assert states(h) == {"active": 1, "pending": 0, "expired": 0}
        bodies = await h.delivered()
        assert [a["service"] for a in paged(bodies)] == ["payment"]
        assert [a["service"] for a in paged(bodies, "resolved")] == ["payment"]
        assert sample(h.telemetry, "tracetriage_alerts_suppressed_total", **LABEL, reason="silenced") == 1
        # Expired at t=1400: cart, still failing, is paged at its group's next flush.
        assert states(h) == {"active": 0, "pending": 0, "expired": 1}
        for _ in range(int(INTERVAL // 10)):
            h.fail("cart")
            h.advance(10)
        assert [a["service"] for a in paged(await h.delivered())] == ["payment", "cart"]
        assert sample(h.telemetry, "tracetriage_alerts_suppressed_total", **LABEL, reason="silenced") == 1
    finally:
        await h.stop()


async def test_alert_quiet_before_the_silence_ends_is_never_paged(server: CaptureServer,
                                                                  session: aiohttp.ClientSession,
                                                                  tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    path = write_silences(tmp_path / "silences.yaml",
                          [silence(['service="cart"'], clock.wall(), clock.wall() + 400)])
    h = await EngineOnWebhook.start(server, session, TIMERS, str(path), clock)
    try:
        h.fail("cart")
        h.advance(1000)
        assert await h.delivered() == []
        assert h.engine.groups == []  # dropped once quiet: nothing held for ever
    finally:
        await h.stop()


# -- reloads ----------------------------------------------------------------------------------------------


def reload_errors(telemetry: Telemetry) -> float:
    return sample(telemetry, "tracetriage_alert_silences_reload_errors_total", **LABEL)


async def test_reload_picks_up_a_new_silence(server: CaptureServer, session: aiohttp.ClientSession,
                                             tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    path = write_silences(tmp_path / "silences.yaml", [])
    h = await EngineOnWebhook.start(server, session, TIMERS, str(path), clock)
    assert h.silences is not None
    try:
        assert h.silences.refresh() is False  # unchanged
        write_silences(path, [silence(['team="warehouse"'], clock.wall() - 60, clock.wall() + 3600)])
        assert h.silences.refresh() is True
        h.fail("inventory", "warehouse")
        h.fail("payment", "payments")
        h.advance(WAIT)
        assert [a["service"] for a in paged(await h.delivered())] == ["payment"]
        assert states(h)["active"] == 1 and reload_errors(h.telemetry) == 0
    finally:
        await h.stop()


async def test_invalid_reload_keeps_the_old_silences_and_is_counted(server: CaptureServer,
                                                                    session: aiohttp.ClientSession,
                                                                    tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    path = write_silences(tmp_path / "silences.yaml",
                          [silence(['team="warehouse"'], clock.wall() - 60, clock.wall() + 3600, id="w")])
    h = await EngineOnWebhook.start(server, session, TIMERS, str(path), clock)
    assert h.silences is not None
    try:
        write_silences(path, [silence(['team="warehouse"'], 0, 1), {"matchers": ["team=x"]}])
        assert h.silences.refresh() is False
        assert [s.id for s in h.silences.silences] == ["w"]
        assert reload_errors(h.telemetry) == 1
        assert h.silences.refresh() is False  # the same broken file is not reported again
        assert reload_errors(h.telemetry) == 1
        h.fail("inventory", "warehouse")
        h.advance(WAIT)
        assert await h.delivered() == []  # still silenced
        # The file is fixed: the silence is lifted, and inventory, still failing, is paged.
        write_silences(path, [])
        assert h.silences.refresh() is True and h.silences.silences == ()
        h.fail("inventory", "warehouse")
        h.advance(INTERVAL)
        assert [a["service"] for a in paged(await h.delivered())] == ["inventory"]
    finally:
        await h.stop()


def test_file_gone_keeps_the_silences_and_a_new_file_is_loaded(tmp_path: Path) -> None:
    telemetry = Telemetry()
    path = tmp_path / "silences.yaml"
    s = Silences(str(path), 0.0, metrics=AlertMetrics(telemetry), label="alert_routing",
                 logger=logging.getLogger("test.silences"), wall_clock=lambda: 500.0)
    s.load()  # missing at start: no silences, no error
    assert s.silences == () and reload_errors(telemetry) == 0
    write_silences(path, [silence(['team="a"'], 0, 1000)])
    assert s.refresh() is True and len(s.silences) == 1 and s.count("active") == 1
    path.unlink()
    assert s.refresh() is False and len(s.silences) == 1
    assert s.refresh() is False
    assert reload_errors(telemetry) == 1
    write_silences(path, [silence(['team="a"'], 0, 1000), silence(['team="b"'], 600, 1000)])
    assert s.refresh() is True and [s.state(500.0) for s in s.silences] == ["active", "pending"]


def test_invalid_file_at_start_is_refused(tmp_path: Path) -> None:
    path = write_silences(tmp_path / "silences.yaml", "- matchers: [team=a]\n")
    s = Silences(str(path), 0.0, metrics=AlertMetrics(Telemetry()), label="alert_routing",
                 logger=logging.getLogger("test.silences"))
    with pytest.raises(SilencesError, match=r"\[0\]\.starts_at: is required"):
        s.load()


# -- end to end: the processor and its reload task --------------------------------------------------------


async def test_processor_reloads_the_file(server: CaptureServer, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog.yaml", {"payment": "payments", "inventory": "warehouse"},
                            {"payments": None, "warehouse": None})
    now = time.time()
    path = write_silences(tmp_path / "silences.yaml", [silence(['team="warehouse"'], now - 60, now + 3600)])
    telemetry = Telemetry()
    proc = build({
        "ownership": {"catalog": [str(catalog)]},
        "group_wait": "50ms", "group_interval": "50ms", "repeat_interval": "1h", "resolve_timeout": "2s",
        "route": {"receiver": "hook"},
        "receivers": [{"name": "hook", "webhook": {"url": f"{server.url}/hook"}}],
        "silences": {"file": str(path), "reload_interval": "20ms"},
    }, telemetry)
    await proc.start(Host())
    assert proc.silences is not None
    try:
        assert sample(telemetry, "tracetriage_alert_silences", **LABEL, state="active") == 1
        proc.process_traces([failed_trace(make_failure("inventory", "reserve")),
                             failed_trace(make_failure("payment", "charge"))])
        await server.wait_count(1, "/hook")
        await asyncio.sleep(0.2)
        assert [a["service"] for a in paged(server.bodies("/hook"))] == ["payment"]
        assert sample(telemetry, "tracetriage_alerts_suppressed_total", **LABEL, reason="silenced") == 1
        # A broken edit: logged and counted, the silence stays.
        write_silences(path, "- {matchers: [team=warehouse], starts_at: yesterday}\n")
        await wait_until(lambda: reload_errors(telemetry) == 1)
        proc.process_traces([failed_trace(make_failure("inventory", "reserve"))])
        await asyncio.sleep(0.2)
        assert [a["service"] for a in paged(server.bodies("/hook"))] == ["payment"]
        # The silence is deleted from the file: inventory, still failing, is paged.
        write_silences(path, [])
        await wait_until(lambda: proc.silences is not None and proc.silences.silences == ())
        proc.process_traces([failed_trace(make_failure("inventory", "reserve"))])
        await server.wait_for(lambda: "inventory" in [a["service"] for a in paged(server.bodies("/hook"))])
        assert sample(telemetry, "tracetriage_alert_silences", **LABEL, state="active") == 0
    finally:
        await proc.shutdown()


async def wait_until(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)
