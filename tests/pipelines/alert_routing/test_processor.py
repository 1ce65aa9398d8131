"""The alert_routing stage end to end: real Trace objects carrying root_cause's failures, the real
ownership catalog on disk, real HTTP servers on 127.0.0.1 standing in for each receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collector import Host, Telemetry
from collector.component import TraceStage
from collector.consumer import Capabilities
from pipelines.alert_routing import AlertRoutingProcessor
from tests.pipelines.alert_routing.helpers import (
    CaptureServer,
    HangingServer,
    build,
    failed_trace,
    make_failure,
    plain_trace,
    sample,
    write_catalog,
)

GROUP_WAIT, GROUP_INTERVAL, REPEAT, RESOLVE = "100ms", "100ms", "400ms", "300ms"
TRACE_URL = "https://grafana.example/explore?traceId={trace_id}"

COMPONENTS = {"payment": "payments", "inventory": "warehouse", "email": "growth", "frontend": "web"}
GROUPS: dict[str, str | None] = {"payments": "PD-PAYMENTS-1", "warehouse": "PD-WAREHOUSE", "growth": None,
                                 "web": "PD-WEB"}


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.yaml", COMPONENTS, GROUPS)


def config(server: CaptureServer, catalog: Path, **top: Any) -> dict[str, Any]:
    """Every receiver kind on one capture server (told apart by path); root route to the webhook."""
    raw: dict[str, Any] = {
        "ownership": {"catalog": [str(catalog)], "reload_interval": "50ms", "default_team": "sre"},
        "group_wait": GROUP_WAIT, "group_interval": GROUP_INTERVAL, "repeat_interval": REPEAT,
        "resolve_timeout": RESOLVE, "trace_url": TRACE_URL, "external_url": "http://tracetriage:8888",
        "route": {"receiver": "hook"},
        "receivers": [
            {"name": "hook", "webhook": {"url": f"{server.url}/hook"}},
            {"name": "pd", "pagerduty": {"url": f"{server.url}/pd", "fallback_receiver": "hook", "insecure": True}},
            {"name": "pd-strict", "pagerduty": {"url": f"{server.url}/pd", "insecure": True}},
            {"name": "pd-fixed", "pagerduty": {"url": f"{server.url}/pd", "routing_key": "FIXED", "insecure": True}},
            {"name": "chat", "slack": {"webhook_url": f"{server.url}/slack", "channel": "#incidents",
                                         "insecure": True}},
        ],
        "shutdown_timeout": "2s",
    }
    for r in raw["receivers"]:
        r["retry"] = {"initial_interval": "20ms", "max_interval": "100ms", "max_elapsed_time": "5s"}
    raw.update(top)
    return raw


async def started(raw: dict[str, Any], telemetry: Telemetry | None = None) -> AlertRoutingProcessor:
    proc = build(raw, telemetry)
    await proc.start(Host())
    return proc


async def test_is_a_trace_stage_that_passes_every_trace_on(server: CaptureServer, catalog: Path) -> None:
    proc = build(config(server, catalog, decision_wait="3s"))
    assert isinstance(proc, TraceStage)
    assert proc.capabilities() == Capabilities(trace_level=True)
    assert proc.buffer_settings.decision_wait == 3.0
    traces = [plain_trace(), failed_trace(make_failure()), plain_trace()]
    before = [bytes(c) for t in traces for c in t.chunks.values()]
    assert proc.process_traces(traces) is traces
    assert [bytes(c) for t in traces for c in t.chunks.values()] == before
    await proc.shutdown()
    await proc.shutdown()  # idempotent


async def test_shutdown_before_start_is_safe(server: CaptureServer, catalog: Path) -> None:
    proc = build(config(server, catalog))
    await proc.shutdown()


async def test_thousand_failures_one_page(server: CaptureServer, catalog: Path) -> None:
    raw = config(server, catalog, route={"receiver": "pd"}, repeat_interval="1h", resolve_timeout="1h")
    proc = await started(raw)
    try:
        traces = [failed_trace(make_failure("payment", "charge")) for _ in range(1000)]
        for i in range(0, 1000, 100):
            proc.process_traces(traces[i:i + 100])
        pages = await server.wait_count(1, "/pd")
        await asyncio.sleep(0.5)  # several group intervals: nothing more
        pages = server.bodies("/pd")
        assert len(pages) == 1
        page = pages[0]
        assert page["event_action"] == "trigger" and page["routing_key"] == "PD-PAYMENTS-1"
        assert page["payload"]["custom_details"]["count"] == 1000
        assert page["payload"]["source"] == "payment" and page["payload"]["severity"] == "critical"
    finally:
        await proc.shutdown()


async def test_repeat_then_resolve(server: CaptureServer, catalog: Path) -> None:
    proc = await started(config(server, catalog))
    try:
        started_at = time.monotonic()
        # Keep failing until the repeat arrives (repeat_interval 400ms), then go quiet.
        last_failure_at = 0.0
        while len(server.bodies("/hook")) < 2:
            proc.process_traces([failed_trace(make_failure())])
            last_failure_at = time.monotonic()
            await asyncio.sleep(0.05)
            assert time.monotonic() - started_at < 5
        first, repeat = server.bodies("/hook")[:2]
        assert first["status"] == repeat["status"] == "firing"
        assert first["groupKey"] == repeat["groupKey"]
        gap = server.received[1].at - server.received[0].at
        assert 0.38 <= gap < 1.0, gap
        bodies = await server.wait_count(3, "/hook")
        resolved = bodies[2]
        assert resolved["status"] == "resolved" and resolved["groupKey"] == first["groupKey"]
        assert server.received[2].at - last_failure_at >= 0.3
        alert = resolved["alerts"][0]
        assert alert["status"] == "resolved" and alert["endsAt"] != "0001-01-01T00:00:00Z"
        await asyncio.sleep(0.3)
        assert len(server.bodies("/hook")) == 3  # the group is gone
        assert proc.engine.groups == []
    finally:
        await proc.shutdown()


async def test_pagerduty_resolve_keeps_the_trigger_routing_key(server: CaptureServer, catalog: Path) -> None:
    proc = await started(config(server, catalog, route={"receiver": "pd"}, resolve_timeout="500ms"))
    try:
        proc.process_traces([failed_trace(make_failure())])
        trigger = (await server.wait_count(1, "/pd"))[0]
        assert trigger["routing_key"] == "PD-PAYMENTS-1"
        # The catalog changes the team's key while the incident is open.
        write_catalog(catalog, COMPONENTS, {**GROUPS, "payments": "PD-PAYMENTS-NEW-KEY"})
        deadline = time.monotonic() + 3
        while proc.ownership.pagerduty_key_for("payment", "payments") != "PD-PAYMENTS-NEW-KEY":
            assert time.monotonic() < deadline, "catalog not reloaded"
            await asyncio.sleep(0.02)
        resolve = (await server.wait_count(2, "/pd"))[1]
        assert resolve == {"routing_key": "PD-PAYMENTS-1", "event_action": "resolve",
                           "dedup_key": trigger["dedup_key"]}
        # The next incident uses the new key.
        proc.process_traces([failed_trace(make_failure())])
        again = (await server.wait_count(3, "/pd"))[2]
        assert again["event_action"] == "trigger" and again["routing_key"] == "PD-PAYMENTS-NEW-KEY"
    finally:
        await proc.shutdown()


async def test_team_keyed_pagerduty_fallback_and_undeliverable(server: CaptureServer, catalog: Path) -> None:
    tel = Telemetry()
    raw = config(server, catalog, route={"receiver": "pd", "routes": [
        {"matchers": ['signal="nightly"'], "receiver": "pd-strict"},
        {"matchers": ['signal="export"'], "receiver": "pd-fixed"},
    ]}, repeat_interval="1h", resolve_timeout="1h")
    proc = await started(raw, tel)
    try:
        proc.process_traces([
            failed_trace(make_failure("payment", "charge")),        # payments: its own key
            failed_trace(make_failure("inventory", "reserve")),     # warehouse: its own key
            failed_trace(make_failure("email", "send")),            # growth has no key -> fallback webhook
            failed_trace(make_failure("email", "send", signal="nightly")),  # no key, no fallback
            failed_trace(make_failure("email", "send", signal="export")),   # receiver's own key
        ])
        await server.wait_count(3, "/pd")
        hooks = await server.wait_count(1, "/hook")
        await asyncio.sleep(0.3)
        keys = sorted(b["routing_key"] for b in server.bodies("/pd"))
        assert keys == ["FIXED", "PD-PAYMENTS-1", "PD-WAREHOUSE"]
        assert len(hooks) == 1
        assert hooks[0]["receiver"] == "pd"  # the route's receiver; delivered through its fallback
        assert hooks[0]["commonLabels"]["team"] == "growth"
        assert sample(tel, "tracetriage_alerts_undeliverable_total", receiver="pd-strict", team="growth") == 1
        assert sample(tel, "tracetriage_alerts_sent_total", receiver="pd", status="sent") == 2
        assert sample(tel, "tracetriage_alerts_sent_total", receiver="hook", status="sent") == 1
    finally:
        await proc.shutdown()


async def test_webhook_v4_payload(server: CaptureServer, catalog: Path) -> None:
    proc = await started(config(server, catalog, group_by=["team"]))
    try:
        f1 = make_failure("payment", "charge", error_type="TimeoutError", error_message="db timed out")
        f2 = make_failure("payment", "refund")
        proc.process_traces([failed_trace(f1), failed_trace(f1), failed_trace(f2)])
        body = (await server.wait_count(1, "/hook"))[0]
        assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                             "commonLabels", "commonAnnotations", "externalURL", "alerts"}
        assert body["version"] == "4"
        assert body["groupKey"] == '{}:{team="payments"}'
        assert body["truncatedAlerts"] == 0
        assert body["status"] == "firing" and body["receiver"] == "hook"
        assert body["groupLabels"] == {"team": "payments"}
        assert body["commonLabels"] == {"team": "payments", "service": "payment", "signal": "checkout",
                                        "severity": "page"}
        assert body["commonAnnotations"] == {"signal_span": "frontend:place_order"}
        assert body["externalURL"] == "http://tracetriage:8888"
        alerts = body["alerts"]
        assert [a["labels"]["span_name"] for a in alerts] == ["charge", "refund"]  # most failures first
        a = alerts[0]
        assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
        assert a["startsAt"].endswith("Z") and len(a["fingerprint"]) == 16
        assert a["labels"] == {"team": "payments", "service": "payment", "span_name": "charge",
                               "signal": "checkout", "severity": "page"}
        tid = f1.trace_id.hex()
        assert a["annotations"] == {
            "summary": "payment: charge failing (root cause of frontend:place_order)",
            "trace_id": tid, "path": "frontend:place_order -> checkout:pay -> payment:charge",
            "signal_span": "frontend:place_order", "error_type": "TimeoutError", "error_message": "db timed out",
            "trace_url": TRACE_URL.format(trace_id=tid),
        }
        assert a["generatorURL"] == TRACE_URL.format(trace_id=tid)
    finally:
        await proc.shutdown()


async def test_slack_blocks(server: CaptureServer, catalog: Path) -> None:
    proc = await started(config(server, catalog, route={"receiver": "chat"}))
    try:
        f = make_failure("inventory", "reserve", error_type="DeadlineExceeded")
        proc.process_traces([failed_trace(f) for _ in range(7)])
        body = (await server.wait_count(1, "/slack"))[0]
        assert body["channel"] == "#incidents"
        assert body["text"] == "[FIRING] inventory: reserve failing (root cause of frontend:place_order)"
        blocks = body["blocks"]
        assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
        fields = [x["text"] for x in blocks[1]["fields"]]
        assert fields == ["*Team*\nwarehouse", "*Root cause*\ninventory: reserve",
                          "*Signal*\ncheckout (frontend:place_order)", "*Count*\n7", "*Error*\nDeadlineExceeded"]
        assert blocks[2]["text"]["text"] == "*Path*\n`frontend:place_order -> checkout:pay -> inventory:reserve`"
        link = blocks[3]["elements"][0]["text"]
        assert link.startswith("<https://grafana.example/explore?traceId=") and "|Example trace" in link
    finally:
        await proc.shutdown()


async def test_latency_failures_from_root_cause_are_paged_with_their_kind(server: CaptureServer,
                                                                         catalog: Path) -> None:
    from collector.config import decode
    from pipelines.root_cause import Config as RootCauseConfig
    from pipelines.root_cause import factory as root_cause
    from tests.pipelines import RecordingConsumer, make_settings
    from tests.pipelines.root_cause import SERVER, span, trace

    ms = 1_000_000
    rc = root_cause.create(make_settings("root_cause"), decode(RootCauseConfig, {"latency_threshold": "500ms"}),
                           RecordingConsumer())
    slow = trace(("frontend", [span(1, "GET /product", start=0, end=900 * ms, kind=SERVER)]),
                 ("inventory", [span(2, "GetStock", 1, start=50 * ms, end=850 * ms, kind=SERVER)]))
    rc.process_traces([slow])
    proc = await started(config(server, catalog))
    try:
        proc.process_traces([slow])
        (alert,) = (await server.wait_count(1, "/hook"))[0]["alerts"]
        assert alert["labels"] == {"team": "warehouse", "service": "inventory", "span_name": "GetStock",
                                   "signal": "root", "severity": "page"}
        ann = alert["annotations"]
        assert ann["summary"] == (
            "inventory: GetStock slow (800 ms of 900 ms in frontend:GET /product, threshold 500 ms)")
        assert (ann["kind"], ann["self_time_ms"], ann["duration_ms"], ann["threshold_ms"]) == (
            "latency", "800.000", "900.000", "500")
        assert ann["path"] == "frontend:GET /product -> inventory:GetStock"
    finally:
        await proc.shutdown()


async def test_receiver_recovering_from_503_gets_the_page(server: CaptureServer, catalog: Path) -> None:
    server.script = [503, 503, 503]
    proc = await started(config(server, catalog, route={"receiver": "pd"}))
    try:
        proc.process_traces([failed_trace(make_failure())])
        await server.wait_for(lambda: 200 in server.answers)
        assert server.answers[:4] == [503, 503, 503, 200]
        assert [b["event_action"] for b in server.bodies("/pd")] == ["trigger"] * 4
    finally:
        await proc.shutdown()


async def test_owner_from_resource_attribute_and_blamed_callee(server: CaptureServer, catalog: Path) -> None:
    raw = config(server, catalog, ownership={"catalog": [str(catalog)], "resource_attribute": "service.owner"},
                 group_by=["team", "service"])
    proc = await started(raw)
    try:
        proc.process_traces([
            # The payment service declares another owner in its telemetry: that wins.
            failed_trace(make_failure("payment", "charge", resource_attributes={"service.owner": "group:billing"})),
            # A database blamed from payment's CLIENT span: payment's resource says nothing about the database.
            failed_trace(make_failure("postgres", "SELECT", blamed_callee=True, span_service="payment",
                                      resource_attributes={"service.owner": "group:billing"})),
            failed_trace(make_failure("unknown-svc", "x")),
        ])
        bodies = await server.wait_count(3, "/hook")
        teams = {b["groupLabels"]["service"]: b["groupLabels"]["team"] for b in bodies}
        assert teams == {"payment": "billing", "postgres": "sre", "unknown-svc": "sre"}
        pg = next(b for b in bodies if b["groupLabels"]["service"] == "postgres")
        assert pg["alerts"][0]["annotations"]["caller"] == "payment"
    finally:
        await proc.shutdown()


async def test_shutdown_flushes_groups_still_waiting(server: CaptureServer, catalog: Path) -> None:
    proc = await started(config(server, catalog, group_wait="1h"))
    proc.process_traces([failed_trace(make_failure())])
    await asyncio.sleep(0.1)
    assert server.received == []
    await proc.shutdown()
    assert [b["status"] for b in server.bodies("/hook")] == ["firing"]


async def test_shutdown_is_bounded_when_a_receiver_hangs(server: CaptureServer, catalog: Path) -> None:
    hang = await HangingServer().start()
    tel = Telemetry()
    raw = config(server, catalog, shutdown_timeout="200ms", group_by=["..."], repeat_interval="1h",
                 resolve_timeout="1h")
    raw["receivers"][0] = {"name": "hook", "webhook": {"url": hang.url}, "timeout": "30s"}
    proc = await started(raw, tel)
    try:
        proc.process_traces([failed_trace(make_failure(f"svc{i}", "op")) for i in range(5)])
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        await proc.shutdown()
        assert time.monotonic() - t0 < 1.0
        assert sample(tel, "tracetriage_alerts_sent_total", receiver="hook", status="dropped") == 5
    finally:
        await hang.stop()


async def _rate(proc: AlertRoutingProcessor, seconds: float) -> float:
    """process_traces calls per second (100 failed traces per call, 50 distinct root causes), with the
    event loop running the router's tasks between calls."""
    batch = [failed_trace(make_failure(f"svc{i % 50}", "op")) for i in range(100)]
    calls = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        proc.process_traces(batch)
        calls += 1
        await asyncio.sleep(0)
    return calls / seconds


async def test_hanging_receiver_does_not_slow_process_traces(server: CaptureServer, catalog: Path) -> None:
    hang = await HangingServer().start()
    timing = {"group_wait": "10ms", "group_interval": "10ms", "repeat_interval": "100ms", "resolve_timeout": "1h"}
    raw = config(server, catalog, **timing)
    raw["receivers"][0]["rate_limit"] = {"rate": 10000, "period": "1s"}
    ok = await started(raw)
    raw = config(server, catalog, **timing)
    raw["receivers"][0] = {"name": "hook", "webhook": {"url": hang.url}, "timeout": "30s", "outbox_size": 10}
    stuck = await started(raw)
    try:
        healthy_rate = await _rate(ok, 1.0)
        hanging_rate = await _rate(stuck, 1.0)
        assert hang.connections >= 1
        # Bounded: 10 queued + 1 in flight, older notifications dropped, nothing blocks.
        assert stuck.notifiers["hook"].pending == 11
        assert len(server.bodies("/hook")) > 10  # the healthy one really did send meanwhile
        assert hanging_rate > healthy_rate / 3, (healthy_rate, hanging_rate)
    finally:
        await ok.shutdown()
        await stuck.shutdown()
        await hang.stop()


async def test_catalog_edited_on_disk_changes_the_next_pages_team(server: CaptureServer, catalog: Path) -> None:
    proc = await started(config(server, catalog, route={"receiver": "pd"}))
    try:
        proc.process_traces([failed_trace(make_failure())])
        first = (await server.wait_count(1, "/pd"))[0]
        assert first["payload"]["custom_details"]["labels"]["team"] == "payments"
        assert first["routing_key"] == "PD-PAYMENTS-1"
        # The payment service moves to the warehouse team, on disk only: no restart, no config change.
        write_catalog(catalog, {**COMPONENTS, "payment": "warehouse"}, GROUPS)
        deadline = time.monotonic() + 3
        while proc.ownership.owner_of("payment").name != "warehouse":
            assert time.monotonic() < deadline, "catalog not reloaded"
            await asyncio.sleep(0.02)
        proc.process_traces([failed_trace(make_failure())])
        pages = await server.wait_count(2, "/pd")
        nxt = next(p for p in pages[1:] if p["event_action"] == "trigger")
        assert nxt["payload"]["custom_details"]["labels"]["team"] == "warehouse"
        assert nxt["routing_key"] == "PD-WAREHOUSE"
    finally:
        await proc.shutdown()
