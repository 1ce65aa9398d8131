"""Aggregation groups on a fake clock: group_wait, group_interval, repeat_interval, resolve_timeout,
group keys, counts and the bounds."""

from __future__ import annotations

import logging
from typing import Any

from collector import Telemetry
from collector.config import decode
from pipelines.alert_routing import Config
from pipelines.alert_routing.alerts import Notification
from pipelines.alert_routing.grouping import AggregationGroup, GroupingEngine
from pipelines.alert_routing.metrics import AlertMetrics
from pipelines.alert_routing.route import build_routes
from tests.pipelines.alert_routing.helpers import make_failure, sample

WAIT, INTERVAL, REPEAT, RESOLVE = 10.0, 60.0, 600.0, 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def engine(route: dict[str, Any] | None = None, **top: Any) -> tuple[GroupingEngine, list[Notification], Clock,
                                                                      Telemetry]:
    cfg = decode(Config, {
        "route": route or {"receiver": "hook"},
        "receivers": [{"name": n, "webhook": {"url": "http://x"}} for n in ("hook", "other")],
        "group_wait": f"{WAIT}s", "group_interval": f"{INTERVAL}s", "repeat_interval": f"{REPEAT}s",
        "resolve_timeout": f"{RESOLVE}s", **top,
    })
    sent: list[Notification] = []
    clock = Clock()
    telemetry = Telemetry()

    def notify(group: AggregationGroup, n: Notification) -> None:
        sent.append(n)

    eng = GroupingEngine(
        build_routes(cfg), notify, resolve_timeout=float(cfg.resolve_timeout), max_groups=cfg.max_groups,
        max_alerts_per_group=cfg.max_alerts_per_group, trace_url=cfg.trace_url, external_url="http://tt",
        metrics=AlertMetrics(telemetry), label="alert_routing", logger=logging.getLogger("test"), clock=clock,
        wall_clock=lambda: clock.now + 1.7e9,
    )
    return eng, sent, clock, telemetry


def add(eng: GroupingEngine, service: str = "payment", span: str = "charge", team: str = "payments",
        signal: str = "checkout", n: int = 1) -> None:
    for _ in range(n):
        f = make_failure(service, span, signal=signal)
        eng.add((team, service, span, signal, "page"), f)
    eng.count_failures()


def advance(eng: GroupingEngine, clock: Clock, seconds: float, step: float = 1.0) -> None:
    end = clock.now + seconds
    while clock.now < end:
        clock.now = min(clock.now + step, end)
        eng.flush_due(clock.now)


def test_first_notification_after_group_wait_counts_every_failure() -> None:
    eng, sent, clock, tel = engine()
    add(eng, n=1000)
    advance(eng, clock, WAIT - 1)
    assert sent == []
    advance(eng, clock, 1)
    assert len(sent) == 1
    n = sent[0]
    assert n.status == "firing" and n.count == 1000 and len(n.alerts) == 1
    assert n.group_labels == {"team": "payments", "service": "payment", "span_name": "charge"}
    assert n.group_key == '{}:{service="payment",span_name="charge",team="payments"}'
    assert n.alerts[0].count == 1000
    assert sample(tel, "tracetriage_alert_groups", processor="alert_routing") == 1
    assert sample(tel, "tracetriage_alert_failures_total", processor="alert_routing") == 1000
    # More of the same failure: no new notification before repeat_interval (nor a resolve).
    add(eng, n=10)
    advance(eng, clock, RESOLVE - 1)
    assert len(sent) == 1


def test_new_alert_in_group_waits_for_group_interval() -> None:
    eng, sent, clock, _ = engine(group_by=["team"])
    add(eng)
    advance(eng, clock, WAIT)
    assert len(sent) == 1
    advance(eng, clock, 5)
    add(eng, service="cart", span="get")  # same team, new alert
    advance(eng, clock, INTERVAL - 10)
    assert len(sent) == 1
    advance(eng, clock, 5)
    assert len(sent) == 2
    assert {a.labels["service"] for a in sent[1].alerts} == {"payment", "cart"}
    assert sent[1].group_labels == {"team": "payments"}


def test_repeat_after_repeat_interval_while_firing() -> None:
    eng, sent, clock, _ = engine(resolve_timeout="1h")
    add(eng)
    advance(eng, clock, WAIT)
    for _ in range(int(REPEAT // 100)):
        add(eng)
        advance(eng, clock, 100)
    assert len(sent) == 2
    assert sent[1].status == "firing" and sent[1].group_key == sent[0].group_key
    assert sent[1].count > sent[0].count


def test_resolve_after_resolve_timeout_then_group_is_gone() -> None:
    eng, sent, clock, tel = engine()
    add(eng)
    advance(eng, clock, WAIT)
    advance(eng, clock, RESOLVE + INTERVAL)
    assert [n.status for n in sent] == ["firing", "resolved"]
    resolved = sent[1].alerts[0]
    assert resolved.status == "resolved" and resolved.ends_at is not None
    assert resolved.ends_at_text != "0001-01-01T00:00:00Z"
    assert eng.groups == []
    assert sample(tel, "tracetriage_alert_groups", processor="alert_routing") == 0
    # The same failure again: a new group, a new first page after group_wait.
    add(eng)
    advance(eng, clock, WAIT)
    assert [n.status for n in sent] == ["firing", "resolved", "firing"]


def test_an_alert_is_paged_before_it_can_resolve() -> None:
    # group_interval longer than resolve_timeout: an alert that joins an existing group and goes quiet is
    # still paged as firing once, then resolved.
    eng, sent, clock, _ = engine(group_by=["team"], group_interval="10m", resolve_timeout="1m")
    add(eng)
    advance(eng, clock, WAIT)
    add(eng, service="cart", span="get")
    advance(eng, clock, 600)
    assert sent[1].status == "firing"
    assert any(a.labels["service"] == "cart" and a.status == "firing" for a in sent[1].alerts)
    advance(eng, clock, 600)
    assert sent[-1].status == "resolved"


def test_partial_resolve_is_notified_with_the_group_still_firing() -> None:
    eng, sent, clock, _ = engine(group_by=["team"])
    add(eng)
    add(eng, service="cart", span="get")
    advance(eng, clock, WAIT)
    for _ in range(int((RESOLVE + 2 * INTERVAL) // 30)):
        add(eng)  # payment keeps failing, cart went quiet
        advance(eng, clock, 30)
    statuses = [{a.labels["service"]: a.status for a in n.alerts} for n in sent]
    assert statuses[0] == {"payment": "firing", "cart": "firing"}
    assert {"payment": "firing", "cart": "resolved"} in statuses
    assert sent[-1].status == "firing"


def test_alerts_on_two_routes_with_continue_make_two_groups() -> None:
    eng, sent, clock, _ = engine({"receiver": "hook", "routes": [
        {"matchers": ['severity="page"'], "receiver": "other", "continue": True, "group_wait": "1s"},
        {"matchers": ['team="payments"'], "receiver": "hook"},
    ]})
    add(eng)
    advance(eng, clock, 1)
    assert [n.receiver for n in sent] == ["other"]
    advance(eng, clock, WAIT)
    assert [n.receiver for n in sent] == ["other", "hook"]
    assert sent[0].group_key != sent[1].group_key and sent[0].dedup_key != sent[1].dedup_key


def test_bounds_are_counted() -> None:
    eng, _, _, tel = engine(max_groups=3, max_alerts_per_group=2, group_by=["team"])
    for i in range(5):
        add(eng, team=f"t{i}")
    for i in range(3):
        add(eng, team="t0", service=f"s{i}")
    assert len(eng.groups) == 3
    assert sample(tel, "tracetriage_alert_overflow_total", processor="alert_routing", reason="max_groups") == 2
    assert sample(tel, "tracetriage_alert_overflow_total", processor="alert_routing",
                  reason="max_alerts_per_group") == 2


def test_group_by_all_labels() -> None:
    eng, sent, clock, _ = engine(group_by=["..."])
    add(eng, signal="checkout")
    add(eng, signal="refund")
    advance(eng, clock, WAIT)
    assert len(sent) == 2
    assert set(sent[0].group_labels) == {"team", "service", "span_name", "signal", "severity"}


def test_trace_url_annotation() -> None:
    eng, sent, clock, _ = engine(trace_url="https://grafana.example/explore?traceId={trace_id}")
    f = make_failure(error_type="TimeoutError", error_message="db timed out")
    eng.add(("payments", "payment", "charge", "checkout", "page"), f)
    advance(eng, clock, WAIT)
    ann = sent[0].alerts[0].annotations
    assert ann["trace_url"] == f"https://grafana.example/explore?traceId={f.trace_id.hex()}"
    assert ann["trace_id"] == f.trace_id.hex()
    assert ann["path"] == "frontend:place_order -> checkout:pay -> payment:charge"
    assert ann["summary"] == "payment: charge failing (root cause of frontend:place_order)"
    assert (ann["error_type"], ann["error_message"]) == ("TimeoutError", "db timed out")
