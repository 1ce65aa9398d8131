"""Inhibit rules: the rule semantics on alerts with any labels (an SLO burn page over per-cause pages), then
the grouping engine on a fake clock delivering to a real webhook server, then the processor end to end
with root_cause failures, the ownership catalog and a webhook on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collector import Host, Telemetry
from collector.config import ConfigError, decode
from pipelines.alert_routing import Config
from pipelines.alert_routing.inhibit import Inhibitor, InhibitRule
from pipelines.alert_routing.matchers import parse_matcher
from tests.pipelines.alert_routing.helpers import (
    CaptureServer,
    EngineOnWebhook,
    build,
    failed_trace,
    make_failure,
    paged,
    sample,
    write_catalog,
)

RESOLVE = 300.0
WAIT, INTERVAL, REPEAT = 10.0, 60.0, 3600.0
TIMERS = {"group_wait": f"{WAIT}s", "group_interval": f"{INTERVAL}s", "repeat_interval": f"{REPEAT}s",
          "resolve_timeout": f"{RESOLVE}s"}
# A database outage pages its team once: the per-cause pages of the same team it explains are held back.
DB_RULE = {"source_matchers": ['service="postgres"'], "target_matchers": ['service!="postgres"'],
           "equal": ["team"]}


class Labelled:
    """An alert with arbitrary labels, as the inhibitor sees one."""

    def __init__(self, last_seen: float = 0.0, **labels: str) -> None:
        self._labels = labels
        self.last_seen = last_seen
        self.ends_at: float | None = None

    @property
    def labels(self) -> Mapping[str, str]:
        return self._labels


def rule(source: list[str], target: list[str], equal: list[str]) -> InhibitRule:
    return InhibitRule([parse_matcher(t) for t in source], [parse_matcher(t) for t in target], equal)


# -- the rule semantics ----------------------------------------------------------------------------------


def test_slo_burn_inhibits_the_per_cause_pages_of_its_team() -> None:
    inh = Inhibitor([rule(['alertname="SLOBurn"'], ['alertname="RootCause"'], ["team"])], RESOLVE)
    burn = Labelled(alertname="SLOBurn", slo="checkout-availability", team="payments")
    inh.track(burn)
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments", "service": "postgres"}, 10.0) is not None
    assert inh.inhibiting({"alertname": "RootCause", "team": "warehouse", "service": "redis"}, 10.0) is None
    assert inh.inhibiting({"alertname": "RootCause", "service": "postgres"}, 10.0) is None  # team "" != payments
    assert inh.inhibiting({"alertname": "SLOBurn", "team": "payments", "slo": "latency"}, 10.0) is None
    # The burn stops: resolve_timeout after its last failure it no longer inhibits anything.
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments"}, RESOLVE - 0.001) is not None
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments"}, RESOLVE) is None
    burn.last_seen = 500.0  # it burns again
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments"}, 600.0) is not None
    burn.ends_at = 1.0  # resolved
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments"}, 600.0) is None


def test_label_missing_on_both_sides_counts_as_equal() -> None:
    inh = Inhibitor([rule(['alertname="SLOBurn"'], ['alertname="RootCause"'], ["team", "slo"])], RESOLVE)
    inh.track(Labelled(alertname="SLOBurn", team="payments"))  # no slo label
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments"}, 1.0) is not None
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments", "slo": ""}, 1.0) is not None
    assert inh.inhibiting({"alertname": "RootCause", "team": "payments", "slo": "checkout"}, 1.0) is None


def test_an_alert_on_both_sides_is_not_inhibited_by_itself_nor_by_its_peers() -> None:
    # Every page of a team inhibits that team's other pages: both sides match every alert.
    inh = Inhibitor([rule(['severity=~"page|critical"'], ['severity="page"'], ["team"])], RESOLVE)
    a = Labelled(alertname="RootCause", severity="page", team="payments", service="payment")
    b = Labelled(alertname="RootCause", severity="page", team="payments", service="cart")
    inh.track(a)
    inh.track(b)
    assert inh.inhibiting(a.labels, 1.0) is None
    assert inh.inhibiting(b.labels, 1.0) is None
    # A source that is not also a target does inhibit an alert on both sides.
    critical = Labelled(alertname="RootCause", severity="critical", team="payments", service="postgres")
    inh.track(critical)
    assert inh.inhibiting(a.labels, 1.0) is not None
    assert inh.inhibiting(critical.labels, 1.0) is None  # not a target
    inh.forget(critical)
    assert inh.inhibiting(a.labels, 1.0) is None
    assert len(inh) == 2


def test_forget_and_clear_drop_the_index() -> None:
    inh = Inhibitor([rule(['service="postgres"'], ['service!="postgres"'], ["team"])], RESOLVE)
    db = Labelled(service="postgres", team="payments")
    inh.track(db)
    inh.track(Labelled(service="payment", team="payments"))  # not a source: not indexed
    assert len(inh) == 1 and inh.rules[0].sources
    inh.forget(db)
    assert len(inh) == 0 and not inh.rules[0].sources
    inh.track(db)
    inh.clear()
    assert len(inh) == 0 and inh.inhibiting({"service": "payment", "team": "payments"}, 1.0) is None


def test_config_decodes_and_errors_name_the_rule() -> None:
    base: dict[str, Any] = {"route": {"receiver": "r"}, "receivers": [{"name": "r", "webhook": {"url": "http://x"}}]}
    cfg = decode(Config, {**base, "inhibit_rules": [{**DB_RULE, "name": "db-outage"}]})
    r = cfg.inhibit_rules[0]
    assert (r.source_matchers, r.target_matchers, r.equal, r.name) == (
        ('service="postgres"',), ('service!="postgres"',), ("team",), "db-outage")
    assert "db-outage" in str(InhibitRule.from_config(r))
    bad = [{"source_matchers": ["service~x"]}, {"target_matchers": ["a=b", 'b=~"("']}, {"equal": ["team", "a-b"]},
           {"source_match": {"a": "b"}}]
    with pytest.raises(ConfigError) as info:
        decode(Config, {**base, "inhibit_rules": bad}, "processors.alert_routing")
    where = {i.path: i.message for i in info.value.issues}
    p = "processors.alert_routing.inhibit_rules"
    assert "invalid matcher" in where[f"{p}[0].source_matchers[0]"]
    assert "does not compile" in where[f"{p}[1].target_matchers[1]"]
    assert "label name" in where[f"{p}[2].equal[1]"]
    assert "unknown key" in where[f"{p}[3].source_match"]


# -- the engine, delivering to a webhook -----------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def engine(server: CaptureServer, session: aiohttp.ClientSession, *rules: dict[str, Any],
                 **raw: Any) -> EngineOnWebhook:
    return await EngineOnWebhook.start(server, session, {**TIMERS, "inhibit_rules": list(rules), **raw})


def suppressed(h: EngineOnWebhook, reason: str = "inhibited") -> float:
    return sample(h.telemetry, "tracetriage_alerts_suppressed_total", processor="alert_routing", reason=reason)


async def test_inhibited_by_equal_labels_not_by_unequal(server: CaptureServer,
                                                        session: aiohttp.ClientSession) -> None:
    h = await engine(server, session, DB_RULE)
    try:
        h.fail("postgres", "payments", "query")
        h.fail("payment", "payments")  # same team as the outage: held back
        h.fail("inventory", "warehouse")  # another team: paged
        h.advance(WAIT)
        bodies = await h.delivered()
        assert sorted(a["service"] for a in paged(bodies)) == ["inventory", "postgres"]
        assert suppressed(h) == 1
        # Still failing, still inhibited: nothing more at later flushes, and counted once, not per flush.
        for _ in range(5):
            h.fail("postgres", "payments", "query")
            h.fail("payment", "payments")
            h.fail("inventory", "warehouse")
            h.advance(INTERVAL)
        assert len(await h.delivered()) == 2
        assert suppressed(h) == 1
    finally:
        await h.stop()


async def test_inhibition_lifted_when_the_source_resolves(server: CaptureServer,
                                                          session: aiohttp.ClientSession) -> None:
    h = await engine(server, session, DB_RULE)
    try:
        h.fail("postgres", "payments", "query")
        h.fail("payment", "payments")
        h.advance(WAIT)
        assert [a["service"] for a in paged(await h.delivered())] == ["postgres"]
        # The database recovers; payment keeps failing. Once postgres has been quiet for resolve_timeout
        # it is resolved, and the payment page goes out at payment's next flush.
        t0 = h.clock.now
        while h.clock.now - t0 < RESOLVE + 2 * INTERVAL:
            h.fail("payment", "payments")
            h.advance(10)
        bodies = await h.delivered()
        assert [a["service"] for a in paged(bodies, "resolved")] == ["postgres"]
        assert [a["service"] for a in paged(bodies)] == ["postgres", "payment"]
        resolved_at = next(i for i, b in enumerate(bodies) if b["status"] == "resolved")
        payment_at = next(i for i, b in enumerate(bodies) if b["alerts"][0]["labels"]["service"] == "payment")
        assert payment_at > resolved_at  # one outbox: delivered in the order the flushes made them
        assert suppressed(h) == 1
    finally:
        await h.stop()


async def test_rule_matching_both_sides_does_not_inhibit_itself(server: CaptureServer,
                                                                session: aiohttp.ClientSession) -> None:
    h = await engine(server, session,
                     {"source_matchers": ['severity="page"'], "target_matchers": ['severity="page"'],
                      "equal": ["team"]})
    try:
        h.fail("payment", "payments")
        h.fail("cart", "payments")
        h.advance(WAIT)
        assert sorted(a["service"] for a in paged(await h.delivered())) == ["cart", "payment"]
        assert suppressed(h) == 0
    finally:
        await h.stop()


async def test_inhibited_alert_in_a_shared_group_and_its_resolve(server: CaptureServer,
                                                                 session: aiohttp.ClientSession) -> None:
    # One group per team: the page carries the outage only. A page sent before the outage began is still
    # resolved when it goes quiet, inhibited or not (resolves are never held back).
    h = await engine(server, session, DB_RULE, group_by=["team"])
    try:
        h.fail("payment", "payments")
        h.advance(WAIT)
        h.fail("postgres", "payments", "query")
        h.fail("cart", "payments")
        h.advance(INTERVAL)
        bodies = await h.delivered()
        assert [[a["labels"]["service"] for a in b["alerts"]] for b in bodies] == [["payment"], ["postgres"]]
        assert suppressed(h) == 2  # payment (paged before) and cart (new) left out of the second notification
        # payment and cart go quiet; postgres keeps failing.
        t0 = h.clock.now
        while h.clock.now - t0 < RESOLVE + 2 * INTERVAL:
            h.fail("postgres", "payments", "query")
            h.advance(10)
        bodies = await h.delivered()
        resolved = paged(bodies, "resolved")
        assert [a["service"] for a in resolved] == ["payment"]  # cart was never paged: dropped quietly
        assert not any(a["labels"]["service"] == "cart" for b in bodies for a in b["alerts"])
        assert [a["service"] for a in paged(bodies)].count("cart") == 0
    finally:
        await h.stop()


# -- end to end: the processor with root_cause failures ---------------------------------------------------


COMPONENTS = {"payment": "payments", "postgres": "payments", "inventory": "warehouse"}


async def test_processor_database_outage_inhibits_its_teams_other_pages(server: CaptureServer,
                                                                        tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog.yaml", COMPONENTS, {"payments": None, "warehouse": None})
    telemetry = Telemetry()
    proc = build({
        "ownership": {"catalog": [str(catalog)]},
        "group_wait": "100ms", "group_interval": "100ms", "repeat_interval": "1h", "resolve_timeout": "400ms",
        "route": {"receiver": "hook"},
        "receivers": [{"name": "hook", "webhook": {"url": f"{server.url}/hook"}}],
        "inhibit_rules": [DB_RULE],
    }, telemetry)
    await proc.start(Host())
    try:
        # The root cause of one failure is the database (blamed callee of a CLIENT span), of another the
        # payment service; both owned by payments. inventory is the warehouse team's.
        db = make_failure("postgres", "SELECT orders", blamed_callee=True, span_service="payment")
        proc.process_traces([failed_trace(db), failed_trace(make_failure("payment", "charge")),
                             failed_trace(make_failure("inventory", "reserve"))])
        await server.wait_count(2, "/hook")
        await asyncio.sleep(0.3)
        assert sorted(a["service"] for a in paged(server.bodies("/hook"))) == ["inventory", "postgres"]
        assert sample(telemetry, "tracetriage_alerts_suppressed_total", processor="alert_routing",
                      reason="inhibited") == 1
        # The database recovers; payment still fails: its page goes out once postgres resolves.
        deadline = time.monotonic() + 5
        while not any(a["service"] == "payment" for a in paged(server.bodies("/hook"))):
            assert time.monotonic() < deadline, server.bodies("/hook")
            proc.process_traces([failed_trace(make_failure("payment", "charge"))])
            await asyncio.sleep(0.05)
        assert "postgres" in [a["service"] for a in paged(server.bodies("/hook"), "resolved")]
    finally:
        await proc.shutdown()
