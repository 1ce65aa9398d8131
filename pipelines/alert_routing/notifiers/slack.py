"""``slack`` receiver: an incoming-webhook message with blocks (team, root cause, path, count, trace link)."""

from __future__ import annotations

from typing import Any, ClassVar

from pipelines.alert_routing.alerts import Notification
from pipelines.alert_routing.notifiers.base import Notifier

HEADER_MAX = 150  # Slack's limit for a header block's text
FIELD_MAX = 2000
TEXT_MAX = 3000


class SlackNotifier(Notifier):
    kind: ClassVar[str] = "slack"

    __slots__ = ()

    def render(self, notification: Notification) -> tuple[str, dict[str, Any]]:
        cfg = self._config.slack
        assert cfg is not None
        message = slack_message(notification)
        if cfg.channel:
            message["channel"] = cfg.channel
        return cfg.webhook_url.reveal(), message


def slack_message(n: Notification) -> dict[str, Any]:
    ex = n.example
    labels, ann = ex.labels, ex.annotations
    state = "FIRING" if n.status == "firing" else "RESOLVED"
    summary = ann.get("summary", n.group_key)
    text = f"[{state}] {summary}"
    fields = [
        _field("Team", labels.get("team", "")),
        _field("Root cause", f"{labels.get('service', '')}: {labels.get('span_name', '')}"),
        _field("Signal", f"{labels.get('signal', '')} ({ann.get('signal_span', '')})"),
        _field("Count", str(n.count)),
    ]
    if "error_type" in ann or "error_message" in ann:
        error = ": ".join(x for x in (ann.get("error_type", ""), ann.get("error_message", "")) if x)
        fields.append(_field("Error", error))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{state}: {summary}"[:HEADER_MAX]}},
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Path*\n`{ann.get('path', '')}`"[:TEXT_MAX]}},
    ]
    url = ann.get("trace_url")
    link = f"<{url}|Example trace {ann.get('trace_id', '')}>" if url else f"Example trace `{ann.get('trace_id', '')}`"
    context = [{"type": "mrkdwn", "text": link}]
    others = len(n.alerts) - 1
    if others > 0:
        context.append({"type": "mrkdwn", "text": f"+{others} more alerts in this group"})
    blocks.append({"type": "context", "elements": context})
    return {"text": text, "blocks": blocks}


def _field(title: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{title}*\n{value}"[:FIELD_MAX]}
