"""``webhook`` receiver: the Alertmanager webhook payload, version 4."""

from __future__ import annotations

from typing import Any, ClassVar

from pipelines.alert_routing.alerts import AlertSnapshot, Notification
from pipelines.alert_routing.notifiers.base import JSON_HEADERS, Notifier


class WebhookNotifier(Notifier):
    kind: ClassVar[str] = "webhook"

    __slots__ = ()

    def render(self, notification: Notification) -> tuple[str, dict[str, Any]]:
        cfg = self._config.webhook
        assert cfg is not None
        return cfg.url.reveal(), webhook_payload(notification, cfg.max_alerts)

    def headers(self) -> dict[str, str]:
        cfg = self._config.webhook
        assert cfg is not None
        if not cfg.headers:
            return JSON_HEADERS
        return {**{k: v.reveal() for k, v in cfg.headers.items()}, **JSON_HEADERS}


def webhook_payload(n: Notification, max_alerts: int = 0) -> dict[str, Any]:
    """Alertmanager webhook v4 JSON for one notification (``max_alerts`` 0: every alert)."""
    alerts = n.alerts if max_alerts <= 0 else n.alerts[:max_alerts]
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": len(n.alerts) - len(alerts),
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": dict(n.group_labels),
        "commonLabels": n.common_labels(),
        "commonAnnotations": n.common_annotations(),
        "externalURL": n.external_url,
        "alerts": [_alert(a) for a in alerts],
    }


def _alert(a: AlertSnapshot) -> dict[str, Any]:
    return {
        "status": a.status,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": a.starts_at_text,
        "endsAt": a.ends_at_text,
        "generatorURL": a.annotations.get("trace_url", ""),
        "fingerprint": a.fingerprint,
    }
