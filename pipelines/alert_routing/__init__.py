"""``alert_routing`` processor: pages the team that owns the root cause, once per incident.

A trace-level stage after ``root_cause``: each failure becomes an alert (labels ``team``, ``service``,
``span_name``, ``signal``, ``severity``), alerts are routed through an Alertmanager-style route tree,
grouped (``group_wait``, ``group_interval``, ``repeat_interval``, ``resolve_timeout``) and sent to
webhook (Alertmanager v4), PagerDuty (Events API v2) or Slack receivers from bounded, rate-limited,
retried outboxes. Nothing on the alert side ever blocks the span path.
"""

from __future__ import annotations

from collector import Factory, Kind
from pipelines.alert_routing.config import Config
from pipelines.alert_routing.processor import AlertRoutingProcessor, create

factory = Factory(
    "alert_routing", Kind.PROCESSOR, Config, create,
    description="Routes root causes to the owning team: grouped pages via webhook, PagerDuty, Slack.",
)

__all__ = ["AlertRoutingProcessor", "Config", "create", "factory"]
