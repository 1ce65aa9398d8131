"""Receivers of alert notifications: webhook (Alertmanager v4), PagerDuty Events v2, Slack."""

from __future__ import annotations

import logging

from pipelines.alert_routing.config import ReceiverConfig
from pipelines.alert_routing.metrics import AlertMetrics
from pipelines.alert_routing.notifiers.base import Notifier, NotifyError, parse_retry_after
from pipelines.alert_routing.notifiers.pagerduty import PagerDutyNotifier, pagerduty_event
from pipelines.alert_routing.notifiers.slack import SlackNotifier, slack_message
from pipelines.alert_routing.notifiers.webhook import WebhookNotifier, webhook_payload

KINDS: dict[str, type[Notifier]] = {
    "webhook": WebhookNotifier,
    "pagerduty": PagerDutyNotifier,
    "slack": SlackNotifier,
}


def make_notifier(config: ReceiverConfig, metrics: AlertMetrics, logger: logging.Logger) -> Notifier:
    return KINDS[config.kind](config, metrics, logger)


__all__ = [
    "KINDS",
    "Notifier",
    "NotifyError",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
    "make_notifier",
    "pagerduty_event",
    "parse_retry_after",
    "slack_message",
    "webhook_payload",
]
