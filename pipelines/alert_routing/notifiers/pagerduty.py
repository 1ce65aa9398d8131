"""``pagerduty`` receiver: PagerDuty Events API v2.

A trigger carries ``dedup_key`` = sha256 of the group key, the group's summary, source (the root-cause
service), severity (from the ``severity`` label) and custom details (path, an example trace id, the
failure count, labels). A resolve carries the same dedup key and the routing key the trigger used;
that key is chosen once per group by the router (``routing_key`` of the receiver, else the team's key
from the ownership catalog) and travels in :attr:`Notification.routing_key`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from collector.config import Opaque
from pipelines.alert_routing.alerts import Notification
from pipelines.alert_routing.notifiers.base import Notifier, NotifyError

SUMMARY_MAX = 1024

SEVERITIES = {
    "page": "critical",
    "critical": "critical",
    "error": "error",
    "ticket": "warning",
    "warning": "warning",
    "warn": "warning",
    "info": "info",
}
DEFAULT_SEVERITY = "error"


class PagerDutyNotifier(Notifier):
    kind: ClassVar[str] = "pagerduty"

    __slots__ = ()

    @property
    def routing_key(self) -> Opaque:
        """The receiver's own routing key (empty when each team's key comes from the catalog)."""
        cfg = self._config.pagerduty
        return cfg.routing_key if cfg is not None else Opaque()

    @property
    def fallback_receiver(self) -> str:
        cfg = self._config.pagerduty
        return cfg.fallback_receiver if cfg is not None else ""

    def render(self, notification: Notification) -> tuple[str, dict[str, Any]]:
        cfg = self._config.pagerduty
        assert cfg is not None
        key = notification.routing_key or cfg.routing_key
        if not key:
            raise NotifyError(f"no routing key for group {notification.group_key}", retriable=False)
        return cfg.url.reveal(), pagerduty_event(notification, key.reveal(), cfg.client)


# An objective's burn (alert_routing's trigger slo or both): what the page says besides the summary
SLO_DETAILS = ("objective", "burn_rate_long", "burn_rate_short", "burn_rate_threshold", "error_budget_remaining",
               "causes", "routed_to", "critical_path", "latency_ms")

# A failing trace test's annotations (pipelines/trace_tests/model.py) that travel in custom_details.
TRACE_TEST_DETAILS = ("example_trace_ids", "test_file", "failed_assertions", "actual")

def pagerduty_event(n: Notification, routing_key: str, client: str = "tracetriage") -> dict[str, Any]:
    """The event's JSON; ``routing_key`` is the revealed key (the body goes to PagerDuty only)."""
    if n.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": n.dedup_key}
    ex = n.example
    labels = ex.labels
    ann = ex.annotations
    summary = ann.get("summary", n.group_key)
    if len(n.firing) > 1:
        summary += f" (+{len(n.firing) - 1} more)"
    details: dict[str, Any] = {
        "path": ann.get("path", ""),
        "trace_id": ann.get("trace_id", ""),
        "count": n.count,
        "firing_alerts": len(n.firing),
        "labels": dict(labels),
        "group_key": n.group_key,
    }
    for k in ("error_type", "error_message", "caller", *SLO_DETAILS, *TRACE_TEST_DETAILS):
        if k in ann:
            details[k] = ann[k]
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "payload": {
            "summary": summary[:SUMMARY_MAX],
            "source": labels.get("service") or "unknown",
            "severity": SEVERITIES.get(labels.get("severity", "").lower(), DEFAULT_SEVERITY),
            "timestamp": ex.starts_at_text,
            "component": labels.get("span_name", ""),
            "group": labels.get("team", ""),
            "class": labels.get("signal", ""),
            "custom_details": details,
        },
        "client": client,
    }
    if n.external_url:
        event["client_url"] = n.external_url
    url = ann.get("trace_url")
    if url:
        event["links"] = [{"href": url, "text": "Example trace"}]
    return event
