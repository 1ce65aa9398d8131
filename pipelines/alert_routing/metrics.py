"""The metrics of ``alert_routing`` (created once per service registry; labelled per processor/receiver)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from collector import Telemetry


class AlertMetrics:
    __slots__ = (
        "circuit_state", "circuit_transitions", "failures", "groups", "outbox", "overflow", "sent", "silences",
        "silences_reload_errors", "suppressed", "undeliverable",
    )

    def __init__(self, telemetry: Telemetry) -> None:
        self.failures: Counter = telemetry.counter(
            "tracetriage_alert_failures_total",
            "Failures (root causes found by root_cause) taken in by the alert router.", ("processor",),
        )
        self.groups: Gauge = telemetry.gauge(
            "tracetriage_alert_groups", "Aggregation groups held by the alert router.", ("processor",),
        )
        self.overflow: Counter = telemetry.counter(
            "tracetriage_alert_overflow_total",
            "Failures not grouped because a bound was reached (reason: max_groups, max_alerts_per_group).",
            ("processor", "reason"),
        )
        self.sent: Counter = telemetry.counter(
            "tracetriage_alerts_sent_total",
            "Notifications by outcome: sent, failed (permanent error or retries exhausted), "
            "dropped (outbox full or left at shutdown).",
            ("receiver", "status"),
        )
        self.undeliverable: Counter = telemetry.counter(
            "tracetriage_alerts_undeliverable_total",
            "Notifications with no destination: a pagerduty receiver without routing_key found no key for "
            "the team and has no fallback_receiver.",
            ("receiver", "team"),
        )
        self.circuit_state: Gauge = telemetry.gauge(
            "tracetriage_alert_receiver_circuit_state",
            "State of the receiver's circuit breaker: 0 closed, 1 open, 2 half-open.", ("receiver",),
        )
        self.circuit_transitions: Counter = telemetry.counter(
            "tracetriage_alert_receiver_circuit_transitions",
            "Transitions of the receiver's circuit breaker, by the state entered (closed, open, half_open).",
            ("receiver", "to"),
        )
        self.outbox: Gauge = telemetry.gauge(
            "tracetriage_alert_outbox_size", "Notifications waiting in a receiver's outbox.", ("receiver",),
        )
        self.suppressed: Counter = telemetry.counter(
            "tracetriage_alerts_suppressed_total",
            "Firing alerts held back from a notification by an inhibit rule or a silence (reason: inhibited, "
            "silenced): counted when the alert would have been notified (first page, then each "
            "repeat_interval), not at every group_interval.",
            ("processor", "reason"),
        )
        self.silences: Gauge = telemetry.gauge(
            "tracetriage_alert_silences",
            "Silences in the silences file by state at scrape time (active, pending, expired), as "
            "Alertmanager's alertmanager_silences.",
            ("processor", "state"),
        )
        self.silences_reload_errors: Counter = telemetry.counter(
            "tracetriage_alert_silences_reload_errors_total",
            "Reloads of the silences file that failed (invalid, unreadable or gone); the silences last loaded "
            "stay in force.",
            ("processor",),
        )
