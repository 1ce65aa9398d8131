"""Receivers against real HTTP servers on 127.0.0.1: retry on 503/429 (honouring Retry-After), no retry
on 400, giving up, a server that never answers, the bounded outbox, the rate limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from collector import Telemetry
from collector.config import decode
from pipelines.alert_routing.alerts import Alert, Notification
from pipelines.alert_routing.config import ReceiverConfig
from pipelines.alert_routing.metrics import AlertMetrics
from pipelines.alert_routing.notifiers import Notifier, make_notifier, parse_retry_after
from tests.pipelines.alert_routing.helpers import CaptureServer, HangingServer, make_failure, sample

FAST_RETRY = {"initial_interval": "20ms", "max_interval": "100ms", "max_elapsed_time": "3s"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


def notification(n: int = 0, status: str = "firing") -> Notification:
    f = make_failure()
    alert = Alert(("payments", "payment", "charge", "checkout", "page"), f, 0.0, 1.7e9)
    if status == "resolved":
        alert.ends_at = 1.7e9 + 60
    return Notification(receiver="r", group_key=f"group-{n}", dedup_key=f"dedup-{n}",
                        group_labels={"team": "payments"}, status=status, alerts=(alert.snapshot(""),), count=1)


def notifier(url: str, telemetry: Telemetry, **raw: Any) -> Notifier:
    cfg = decode(ReceiverConfig, {"name": "r", "webhook": {"url": url}, "retry": FAST_RETRY, **raw})
    return make_notifier(cfg, AlertMetrics(telemetry), logging.getLogger("test.notifier"))


async def finish(n: Notifier, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        await n.wait_idle()
    await n.stop()


async def test_503_then_200_is_delivered_once_recovered(server: CaptureServer,
                                                         session: aiohttp.ClientSession) -> None:
    server.script = [503, 503]
    tel = Telemetry()
    n = notifier(server.url + "/hook", tel)
    await n.start(session)
    n.enqueue(notification())
    await finish(n)
    assert server.answers == [503, 503, 200]
    assert server.bodies()[-1]["groupKey"] == "group-0"
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="sent") == 1
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 0


async def test_retry_after_is_honoured(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    server.script = [429]
    server.retry_after = "1"
    n = notifier(server.url, Telemetry())
    await n.start(session)
    n.enqueue(notification())
    await finish(n)
    assert server.answers == [429, 200]
    gap = server.received[1].at - server.received[0].at
    assert gap >= 0.95, gap


async def test_client_error_is_not_retried(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    server.script = [400]
    tel = Telemetry()
    n = notifier(server.url, tel)
    await n.start(session)
    n.enqueue(notification(1))
    n.enqueue(notification(2))
    await finish(n)
    assert server.answers == [400, 200]
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="sent") == 1


async def test_gives_up_after_max_elapsed_time(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    server.default_status = 500
    tel = Telemetry()
    n = notifier(server.url, tel, retry={**FAST_RETRY, "max_elapsed_time": "300ms"})
    await n.start(session)
    started = time.monotonic()
    n.enqueue(notification())
    await finish(n)
    assert time.monotonic() - started < 1.0
    assert len(server.answers) >= 3
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1


async def test_server_that_never_answers_times_out_and_is_retried(session: aiohttp.ClientSession) -> None:
    hang = await HangingServer().start()
    try:
        tel = Telemetry()
        n = notifier(hang.url, tel, timeout="100ms", retry={**FAST_RETRY, "max_elapsed_time": "400ms"})
        await n.start(session)
        n.enqueue(notification())
        await finish(n)
        assert hang.connections >= 2
        assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1
    finally:
        await hang.stop()


async def test_unreachable_receiver_is_retried(session: aiohttp.ClientSession) -> None:
    srv = await CaptureServer().start()
    url = srv.url
    await srv.stop()  # nothing listens there any more: connection refused
    tel = Telemetry()
    n = notifier(url, tel, retry={**FAST_RETRY, "max_elapsed_time": "200ms"})
    await n.start(session)
    n.enqueue(notification())
    await finish(n)
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1


async def test_full_outbox_drops_the_oldest(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    tel = Telemetry()
    n = notifier(server.url, tel, outbox_size=2)
    for i in range(5):
        n.enqueue(notification(i))  # not started yet: everything waits in the outbox
    assert n.pending == 2
    assert sample(tel, "tracetriage_alert_outbox_size", receiver="r") == 2
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="dropped") == 3
    await n.start(session)
    await finish(n)
    assert [b["groupKey"] for b in server.bodies()] == ["group-3", "group-4"]
    assert sample(tel, "tracetriage_alert_outbox_size", receiver="r") == 0


async def test_rate_limit(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    n = notifier(server.url, Telemetry(), rate_limit={"rate": 2, "period": "300ms"})
    await n.start(session)
    for i in range(5):
        n.enqueue(notification(i))
    await finish(n)
    times = [r.at for r in server.received]
    assert len(times) == 5
    assert times[4] - times[0] >= 0.55  # requests 3-4 wait one period, request 5 a second one
    assert times[1] - times[0] < 0.2


async def test_stop_counts_what_is_left(session: aiohttp.ClientSession) -> None:
    hang = await HangingServer().start()
    try:
        tel = Telemetry()
        n = notifier(hang.url, tel, timeout="10s")
        await n.start(session)
        for i in range(3):
            n.enqueue(notification(i))
        await asyncio.sleep(0.1)
        n.close()
        n.enqueue(notification(9))
        assert await n.stop() == 3
        assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="dropped") == 4
        assert await n.stop() == 0
    finally:
        await hang.stop()


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
