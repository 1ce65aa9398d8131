"""Receivers against real HTTP servers on 127.0.0.1: retry on 503/429 (honouring Retry-After), no retry
on 400, giving up, a server that never answers, the bounded outbox, the rate limit; redirects followed on
the same origin only (a second server on 127.0.0.1 stands for another host); errors that keep secrets out."""

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
from collector.exporters.redirect import MAX_REDIRECTS
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


def notifier(url: str, telemetry: Telemetry, headers: dict[str, str] | None = None, **raw: Any) -> Notifier:
    hook = {"url": url, "headers": headers} if headers else {"url": url}
    cfg = decode(ReceiverConfig, {"name": "r", "webhook": hook, "retry": FAST_RETRY, **raw})
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
    # Given up only without the circuit breaker: with it, notifications wait in the outbox while the receiver
    # is down (test_circuit_breaker_waits_probes_and_closes).
    n = notifier(server.url, tel, retry={**FAST_RETRY, "max_elapsed_time": "300ms"},
                 circuit_breaker={"enabled": False})
    await n.start(session)
    started = time.monotonic()
    n.enqueue(notification())
    await finish(n)
    assert time.monotonic() - started < 1.0
    assert len(server.answers) >= 3
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1


async def test_circuit_breaker_waits_probes_and_closes(server: CaptureServer,
                                                       session: aiohttp.ClientSession) -> None:
    """A receiver that fails: the circuit opens after failure_threshold failures, nothing is sent while it is
    open (notifications wait in the outbox, and waiting is not retry time), a failed probe opens it again, a
    successful one closes it, and every notification arrives once."""
    threshold, open_for = 3, 0.4
    server.script = [503] * (threshold + 1)
    tel = Telemetry()
    # max_elapsed_time is shorter than the two open periods: waiting out the circuit is not retry time.
    n = notifier(server.url, tel, retry={**FAST_RETRY, "max_elapsed_time": "600ms"},
                 circuit_breaker={"failure_threshold": threshold, "open_duration": f"{open_for}s"})
    breaker = n.breaker
    assert breaker is not None
    await n.start(session)
    n.enqueue(notification(0))
    while sample(tel, "tracetriage_alert_receiver_circuit_state", receiver="r") != 1:
        await asyncio.sleep(0.005)
    opened_at = breaker.opened_at
    assert len(server.answers) == threshold
    for i in range(1, 4):
        n.enqueue(notification(i))
    assert sample(tel, "tracetriage_alert_outbox_size", receiver="r") == 3
    assert len(server.answers) == threshold
    await finish(n)
    times = [r.at for r in server.received]
    assert times[threshold] - opened_at >= open_for * 0.95  # the first probe
    assert times[threshold + 1] - times[threshold] >= open_for * 0.95  # the second, after the first failed
    assert server.answers == [503] * (threshold + 1) + [200] * 4
    delivered = [r.body["groupKey"] for r, status in zip(server.received, server.answers, strict=True) if status == 200]
    assert delivered == [f"group-{i}" for i in range(4)]  # in order, each once
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 0
    assert sample(tel, "tracetriage_alert_receiver_circuit_state", receiver="r") == 0
    assert [sample(tel, "tracetriage_alert_receiver_circuit_transitions_total", receiver="r", to=to)
            for to in ("open", "half_open", "closed")] == [2, 2, 1]


async def test_close_probes_an_open_circuit_at_once(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    server.default_status = 503
    tel = Telemetry()
    n = notifier(server.url, tel, circuit_breaker={"failure_threshold": 2, "open_duration": "1h"})
    await n.start(session)
    n.enqueue(notification(0))
    n.enqueue(notification(1))
    while sample(tel, "tracetriage_alert_receiver_circuit_state", receiver="r") != 1:
        await asyncio.sleep(0.005)
    server.default_status = 200  # back, but the circuit would stay open for an hour
    n.close()  # shutdown: what waits would be dropped at the deadline, so probe now
    await finish(n, timeout=20)
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="sent") == 2
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="dropped") == 0


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
    n = notifier(url, tel, retry={**FAST_RETRY, "max_elapsed_time": "200ms"}, circuit_breaker={"enabled": False})
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


@pytest.fixture
async def other_server() -> AsyncIterator[CaptureServer]:
    """A second server on 127.0.0.1: another origin (its own port), where nothing may ever arrive."""
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_to_another_host_is_not_followed(server: CaptureServer, other_server: CaptureServer,
                                                        session: aiohttp.ClientSession, status: int,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    server.redirects = {"/hook": f"{other_server.url}/steal"}
    server.redirect_status = status
    tel = Telemetry()
    n = notifier(server.url + "/hook", tel, headers={"X-Api-Key": "key-for-the-hook-only"})
    await n.start(session)
    with caplog.at_level(logging.INFO, logger="test.notifier"):
        n.enqueue(notification())
        await finish(n)
    assert server.answers == [status]  # asked once: a redirect elsewhere is permanent, not retried
    assert other_server.received == []  # neither the body nor the X-Api-Key went there
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="sent") == 0
    assert "another origin" in caplog.text and "not followed" in caplog.text
    assert "key-for-the-hook-only" not in caplog.text


async def test_pagerduty_routing_key_is_not_posted_to_a_redirect_target(
        server: CaptureServer, other_server: CaptureServer, session: aiohttp.ClientSession) -> None:
    server.redirects = {"/pd": f"{other_server.url}/pd"}
    tel = Telemetry()
    cfg = decode(ReceiverConfig, {"name": "r", "retry": FAST_RETRY, "pagerduty": {
        "url": server.url + "/pd", "routing_key": "PD-KEY-STAYS-HOME", "insecure": True}})
    n = make_notifier(cfg, AlertMetrics(tel), logging.getLogger("test.notifier"))
    await n.start(session)
    n.enqueue(notification())
    await finish(n)
    assert server.bodies("/pd")[0]["routing_key"] == "PD-KEY-STAYS-HOME"
    assert other_server.received == []
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1


async def test_same_host_redirect_is_followed(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    server.redirects = {"/old": "/new"}  # relative: the same origin
    tel = Telemetry()
    n = notifier(server.url + "/old", tel, headers={"Authorization": "Bearer same-host"})
    await n.start(session)
    n.enqueue(notification())
    await finish(n)
    assert [r.path for r in server.received] == ["/old", "/new"]
    assert server.received[1].body["groupKey"] == "group-0"  # the body is posted again, to the same host
    assert server.received[1].headers["Authorization"] == "Bearer same-host"
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="sent") == 1


async def test_redirect_loop_on_the_same_host_gives_up(server: CaptureServer, session: aiohttp.ClientSession) -> None:
    server.redirects = {"/a": "/b", "/b": "/a"}
    tel = Telemetry()
    n = notifier(server.url + "/a", tel)
    await n.start(session)
    n.enqueue(notification())
    await finish(n)
    assert len(server.received) == MAX_REDIRECTS + 1
    assert sample(tel, "tracetriage_alerts_sent_total", receiver="r", status="failed") == 1


async def test_errors_name_the_origin_only(server: CaptureServer, session: aiohttp.ClientSession,
                                           caplog: pytest.LogCaptureFixture) -> None:
    server.script = [500]
    host_port = server.url.removeprefix("http://")
    n = notifier(f"http://alerts:hunter2-pass@{host_port}/hooks/path-token-0123456789", Telemetry())
    await n.start(session)
    with caplog.at_level(logging.INFO, logger="test.notifier"):
        n.enqueue(notification())
        await finish(n)
    assert server.answers == [500, 200]
    assert server.received[0].headers["Authorization"].startswith("Basic ")  # the password is still sent
    assert f"http://{host_port} answered HTTP 500" in caplog.text
    assert "hunter2-pass" not in caplog.text and "path-token-0123456789" not in caplog.text
