"""Pages driven by SLO burn and routed to the root cause: the real slo stage (a controllable clock, real
traces carrying root_cause's failures) feeding the real alert_routing stage (route tree, grouping, real
HTTP webhook receivers on 127.0.0.1, the ownership catalog on disk)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collector import ComponentID, Host, Telemetry
from collector.errors import ComponentStartError
from collector.model import Trace
from pipelines.alert_routing import AlertRoutingProcessor
from tests.pipelines.alert_routing.helpers import CaptureServer, build, write_catalog
from tests.pipelines.slo.helpers import Clock, checkout_trace, processor, slo_doc

COMPONENTS = {"frontend": "web", "orders-db": "data", "payment": "payments", "inventory": "warehouse"}
GROUPS: dict[str, str | None] = {"web": None, "data": None, "payments": None, "warehouse": None}
SIGNALS_PER_MINUTE = 100


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


def routing_config(server: CaptureServer, catalog: Path, **top: Any) -> dict[str, Any]:
    """One webhook per team (told apart by path), chosen by the route tree on the team label."""
    raw: dict[str, Any] = {
        "ownership": {"catalog": [str(catalog)], "reload_interval": "0s", "default_team": "sre"},
        "group_wait": "50ms", "group_interval": "50ms", "repeat_interval": "1h", "resolve_timeout": "1h",
        "group_by": ["alertname", "slo", "team"],
        "trace_url": "https://traces.example/{trace_id}",
        "trigger": "slo",
        "route": {"receiver": "default", "routes": [
            {"matchers": [f'team="{team}"'], "receiver": team} for team in GROUPS]},
        "receivers": [{"name": "default", "webhook": {"url": f"{server.url}/default"}}] + [
            {"name": team, "webhook": {"url": f"{server.url}/{team}"}} for team in GROUPS],
        "shutdown_timeout": "1s",
    }
    raw.update(top)
    return raw


class Shop:
    """The slo stage and alert_routing wired as the service wires them, with a controllable clock."""

    def __init__(self, tmp_path: Path, server: CaptureServer, slos: list[dict[str, Any]] | None = None,
                 **routing: Any) -> None:
        self.clock = Clock()
        self.clock.now -= self.clock.now % 3600  # minutes of the clock are the buckets' minutes
        self.telemetry = Telemetry()
        self.slo = processor(slos or [slo_doc("checkout")], self.clock, self.telemetry)
        catalog = write_catalog(tmp_path / "catalog.yaml", COMPONENTS, GROUPS)
        self.routing = build(routing_config(server, catalog, **routing), self.telemetry)
        self.host = Host()
        self.host.processors[ComponentID("slo")] = self.slo
        self.good = [checkout_trace() for _ in range(SIGNALS_PER_MINUTE)]

    async def start(self) -> None:
        await self.routing.start(self.host)  # downstream first, as the service starts them
        await self.slo.start(self.host)

    async def stop(self) -> None:
        await self.slo.shutdown()
        await self.routing.shutdown()

    def minute(self, bad: list[Trace]) -> bool:
        """One minute of traffic (SIGNALS_PER_MINUTE signal spans, ``bad`` of them failing) through both
        stages, then an evaluation; whether the 14.4x page fires."""
        traces = self.good[:SIGNALS_PER_MINUTE - len(bad)] + bad
        self.routing.process_traces(self.slo.process_traces(traces))
        self.clock.advance(60)
        return self.slo.evaluate()[0].alerts[0].firing

    def quiet(self, minutes: int) -> None:
        for _ in range(minutes):
            self.slo.record("checkout", SIGNALS_PER_MINUTE)
            self.clock.advance(60)


def failing(cause: str, n: int) -> list[Trace]:
    return [checkout_trace(error=True, cause=cause) for _ in range(n)]


async def test_a_burn_pages_the_team_of_the_dominant_root_cause_then_resolves(tmp_path: Path,
                                                                             server: CaptureServer) -> None:
    shop = Shop(tmp_path, server)
    await shop.start()
    try:
        shop.quiet(3 * 24 * 60)  # three clean days: the ticket's 3-day window has its history
        bad = failing("orders-db", 2)  # 2 % of checkouts fail in the database: 20x the 0.1 % budget
        fired_at = next(m for m in range(1, 61) if shop.minute(bad))
        assert 43 <= fired_at <= 45, fired_at
        (page,) = await server.wait_count(1)
        assert server.received[0].path == "/data"  # the database's owners, not the checkout's (web)
        assert page["status"] == "firing" and len(page["alerts"]) == 1
        alert = page["alerts"][0]
        assert alert["labels"] == {"alertname": "SLOBurn", "slo": "checkout", "team": "data", "service": "orders-db",
                                   "severity": "page", "long_window": "1h", "short_window": "5m"}
        ann = alert["annotations"]
        assert float(ann["burn_rate_long"]) > 14.4 and float(ann["burn_rate_short"]) > 14.4
        assert 0.75 < float(ann["error_budget_remaining"]) < 0.85  # 88 bad of 436 allowed in 3 days
        assert ann["causes"].startswith("orders-db 100% (traces ")
        assert bad[-1].trace_id.hex() in ann["causes"]
        assert ann["trace_url"] == f"https://traces.example/{ann['trace_id']}"
        assert ann["path"] == "frontend:place_order -> checkout:PlaceOrder -> orders-db:query"
        assert ann["routed_to"] == "owner of orders-db, the dominant cause (100%)"
        # still burning: one page, however many evaluations
        for _ in range(5):
            assert shop.minute(bad)
        await asyncio.sleep(0.3)
        assert len(server.received) == 1
        # recovery: the five-minute window falls below 14.4x within two minutes, and the page resolves
        assert not all(shop.minute([]) for _ in range(3))
        pages = await server.wait_count(2)
        assert pages[1]["status"] == "resolved" and server.received[1].path == "/data"
        assert pages[1]["alerts"][0]["labels"]["slo"] == "checkout"
    finally:
        await shop.stop()


async def test_no_dominant_cause_pages_the_objectives_owner_with_the_breakdown(tmp_path: Path,
                                                                             server: CaptureServer) -> None:
    shop = Shop(tmp_path, server)
    await shop.start()
    try:
        shop.quiet(3 * 24 * 60)  # three clean days: the ticket's 3-day window has its history
        bad = failing("orders-db", 1) + failing("payment", 1) + failing("inventory", 1)  # 3 %, a third each
        assert any(shop.minute(bad) for _ in range(40))
        (page,) = await server.wait_count(1)
        assert server.received[0].path == "/web"  # frontend, the objective's service, is web's
        alert = page["alerts"][0]
        assert alert["labels"]["team"] == "web" and alert["labels"]["service"] == "frontend"
        ann = alert["annotations"]
        assert "no cause reaches 50%" in ann["summary"]
        for cause in ("orders-db 33%", "payment 33%", "inventory 33%"):
            assert cause in ann["causes"]
    finally:
        await shop.stop()


async def test_an_explicit_owner_and_min_cause_share_per_objective(tmp_path: Path, server: CaptureServer) -> None:
    doc = slo_doc("checkout", annotations={"tracetriage.io/owner": "group:payments",
                                           "tracetriage.io/min-cause-share": "0.8"})
    shop = Shop(tmp_path, server, [doc])
    await shop.start()
    try:
        shop.quiet(3 * 24 * 60)  # three clean days: the ticket's 3-day window has its history
        bad = failing("orders-db", 3) + failing("inventory", 1)  # orders-db 75 %: below this objective's 80 %
        assert any(shop.minute(bad) for _ in range(40))
        (page,) = await server.wait_count(1)
        assert server.received[0].path == "/payments"
        assert page["alerts"][0]["labels"]["service"] == "frontend"
    finally:
        await shop.stop()


async def test_a_ten_minute_blip_pages_nobody(tmp_path: Path, server: CaptureServer) -> None:
    shop = Shop(tmp_path, server)
    await shop.start()
    try:
        shop.quiet(3 * 24 * 60)  # three clean days: the ticket's 3-day window has its history
        blip = failing("orders-db", 5)  # 5 %: 50x for ten minutes, the five-minute window trips
        assert not any(shop.minute(blip) for _ in range(10))
        assert not any(shop.minute([]) for _ in range(20))
        await asyncio.sleep(0.3)
        assert server.received == []
    finally:
        await shop.stop()


async def test_trigger_slo_does_not_page_failures_and_both_does(tmp_path: Path, server: CaptureServer) -> None:
    shop = Shop(tmp_path, server)
    await shop.start()
    try:
        shop.quiet(3 * 24 * 60)
        shop.minute(failing("payment", 3))  # 3 failures: far from burning the budget
        await asyncio.sleep(0.3)
        assert server.received == []
    finally:
        await shop.stop()
    both = Shop(tmp_path, server, trigger="both")
    await both.start()
    try:
        both.minute(failing("payment", 3))
        (page,) = await server.wait_count(1)
        assert server.received[0].path == "/payments"
        assert page["alerts"][0]["labels"].get("alertname") is None  # a root-cause page, as before
        assert page["alerts"][0]["labels"]["service"] == "payment"
    finally:
        await both.stop()


async def test_alert_routing_finds_its_slo_stage_or_says_why_not(tmp_path: Path, server: CaptureServer) -> None:
    catalog = write_catalog(tmp_path / "catalog.yaml", COMPONENTS, GROUPS)
    routing = build(routing_config(server, catalog))
    with pytest.raises(ComponentStartError, match="pages the burns of processor slo, which is in no pipeline"):
        await routing.start(Host())
    await routing.shutdown()
    host = Host()
    host.processors[ComponentID("slo")] = object()
    routing = build(routing_config(server, catalog))
    with pytest.raises(ComponentStartError, match="slo: processor slo is not an slo processor"):
        await routing.start(host)
    await routing.shutdown()
    # the instance in the stage's own pipeline wins over another pipeline's
    clock = Clock()
    ours, theirs = processor([slo_doc("ours")], clock), processor([slo_doc("theirs")], clock)
    host = Host()
    host.processors[ComponentID("slo", "x")] = theirs
    host.pipeline_processors["traces"] = {ComponentID("slo", "x"): ours}
    routing = build(routing_config(server, catalog, slo="slo/x"))
    await routing.start(host)
    assert isinstance(routing, AlertRoutingProcessor)
    await ours.start(host)
    ours.record("ours", 0, 100)
    ours.evaluate()
    (page,) = await server.wait_count(1)
    assert page["alerts"][0]["labels"]["slo"] == "ours"
    theirs.record("theirs", 0, 100)
    theirs.evaluate()  # another pipeline's stage: no listener there
    await asyncio.sleep(0.2)
    assert len(server.received) == 1
    await routing.shutdown()
    await ours.shutdown()
