"""Alerts: what one kind of failure looks like to a receiver, built from root_cause's :class:`Failure`, or
what a burning objective looks like, built from the slo stage's :class:`SloBurn`.

An alert is identified by its labels (``team``, ``service``, ``span_name``, ``signal``, ``severity``; an
objective's burn also ``alertname``, ``slo``, ``long_window``, ``short_window``). A label with an empty
value is no label (as in Alertmanager): it is left out of the labels sent and of the fingerprint.
Failures with the same labels update one :class:`Alert` (count, last seen, the latest failure as the
example); its annotations are built from that example only when a notification is made, so the
span path does no string formatting.

Latency failures (``Failure.kind`` "latency": a signal span longer than its ``latency_threshold``, see
``root_cause``) are alerts like error failures, with the same labels: ``root_cause`` makes them only for
signals given a threshold, so a threshold is the opt-in to being paged for slowness. Their summary says
"slow" with the blamed span's self time, and their annotations add ``kind``, ``self_time_ms``,
``duration_ms`` and ``threshold_ms``. (An error failure's annotations are unchanged: no ``kind``.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from collector.config import Opaque
from pipelines.root_cause.model import LATENCY, Failure
from pipelines.slo.burn import SloBurn
from pipelines.trace_tests.model import TestFailure

LABEL_NAMES = ("team", "service", "span_name", "signal", "severity", "alertname", "slo", "long_window", "short_window")
NO_SLO_LABELS = ("", "", "", "")  # the last four label values of an alert about a failure

LabelValues = tuple[str, ...]
"""Label values in :data:`LABEL_NAMES` order: the identity of an alert."""

Example = Failure | SloBurn | TestFailure
"""What an alert shows: the latest failure with its labels, the objective's burn, or a failing trace test."""

# trace.notes key: the keys of the alert groups a trace's failures were counted into (for the stages after
# alert_routing, such as tail_sampling's recent-decisions lookup).
ALERT_GROUPS = "alert_routing.groups"

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert that has not ended


def full_values(values: LabelValues) -> LabelValues:
    """``values`` with every label of :data:`LABEL_NAMES`: a shorter tuple (the five labels of a failure)
    gets empty values for the labels it lacks."""
    missing = len(LABEL_NAMES) - len(values)
    return (*values, *("",) * missing) if missing > 0 else values


def label_values(failure: Failure, team: str, severity: str) -> LabelValues:
    primary = failure.primary
    return (team, primary.service, primary.span_name, failure.signal, severity, *NO_SLO_LABELS)


def fingerprint(values: LabelValues) -> str:
    """16 hex digits identifying a label set (stable across processes; empty labels are left out)."""
    h = hashlib.blake2b(digest_size=8)
    for name, value in zip(LABEL_NAMES, values, strict=True):
        if not value:
            continue
        h.update(name.encode())
        h.update(b"\xff")
        h.update(value.encode())
        h.update(b"\xff")
    return h.hexdigest()


def summary(failure: Failure) -> str:
    p = failure.primary
    if failure.kind == LATENCY:
        text = f"{p.service}: {p.span_name} slow ({p.self_time_ms:.0f} ms of {failure.duration_ms:.0f} ms"
        if p.depth > 0:
            text += f" in {failure.signal_service}:{failure.signal_span_name}"
        if failure.threshold_ms:
            text += f", threshold {failure.threshold_ms:g} ms"
        return text + ")"
    text = f"{p.service}: {p.span_name} failing"
    if p.depth > 0:
        text += f" (root cause of {failure.signal_service}:{failure.signal_span_name})"
    return text


def build_annotations(example: Example, trace_url: str) -> dict[str, str]:
    if isinstance(example, SloBurn | TestFailure):
        return example.annotations(trace_url)
    failure = example
    p = failure.primary
    trace_id = failure.trace_id.hex()
    out = {
        "summary": summary(failure),
        "trace_id": trace_id,
        "path": " -> ".join(p.path),
        "signal_span": f"{failure.signal_service}:{failure.signal_span_name}",
    }
    if p.blamed_callee and p.span_service:
        out["caller"] = p.span_service
    if p.error_type:
        out["error_type"] = p.error_type
    if p.error_message:
        out["error_message"] = p.error_message
    if failure.kind == LATENCY:
        out["kind"] = failure.kind
        out["self_time_ms"] = f"{p.self_time_ms:.3f}"
        out["duration_ms"] = f"{failure.duration_ms:.3f}"
        out["threshold_ms"] = f"{failure.threshold_ms:g}"
    if trace_url:
        out["trace_url"] = trace_url.format(trace_id=trace_id)
    return out


def rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Alert:
    """One label set in one aggregation group: mutable, updated by every matching failure.

    A ``held`` alert (an objective's burn) does not resolve after ``resolve_timeout`` without news: it
    fires until :meth:`release` (the burn stopped)."""

    __slots__ = ("count", "ends_at", "example", "fingerprint", "held", "last_seen", "released", "starts_at",
                 "values")

    def __init__(self, values: LabelValues, example: Example, now: float, wall: float, held: bool = False) -> None:
        values = full_values(values)
        self.values = values
        self.fingerprint = fingerprint(values)
        self.example = example  # the latest failure
        self.count = 1
        self.last_seen = now  # monotonic
        self.starts_at = wall  # wall clock, for receivers
        self.ends_at: float | None = None  # wall clock once resolved
        self.held = held
        self.released: float | None = None  # monotonic time a held alert was released

    @property
    def labels(self) -> dict[str, str]:
        return {k: v for k, v in zip(LABEL_NAMES, self.values, strict=True) if v}

    @property
    def resolved(self) -> bool:
        return self.ends_at is not None

    def seen(self, example: Example, now: float) -> None:
        self.example = example
        self.count += 1
        self.last_seen = now
        self.released = None

    def release(self, now: float) -> None:
        if self.released is None:
            self.released = now

    def snapshot(self, trace_url: str) -> AlertSnapshot:
        return AlertSnapshot(
            status="resolved" if self.ends_at is not None else "firing",
            labels=self.labels,
            annotations=build_annotations(self.example, trace_url),
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            fingerprint=self.fingerprint,
            count=self.count,
        )


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """An alert as it stood when a notification was made (what notifiers render)."""

    status: str  # "firing" | "resolved"
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float  # wall clock
    ends_at: float | None
    fingerprint: str
    count: int

    @property
    def starts_at_text(self) -> str:
        return rfc3339(self.starts_at)

    @property
    def ends_at_text(self) -> str:
        return rfc3339(self.ends_at) if self.ends_at is not None else ZERO_TIME


@dataclass(frozen=True, slots=True)
class Notification:
    """What one aggregation group tells one receiver at one flush (immutable: it crosses to a sender task).

    ``routing_key`` is filled in by the router for PagerDuty: the key chosen when the group first
    triggered, reused for its repeats and its resolve; it prints as ``[REDACTED]``.
    """

    receiver: str
    group_key: str
    dedup_key: str  # sha256 of the group key, hex: stable id of the group for receivers that deduplicate
    group_labels: dict[str, str]
    status: str  # "firing" when any alert fires, else "resolved"
    alerts: tuple[AlertSnapshot, ...]  # firing first (most failures first), then resolved
    count: int  # failures counted in the group since it started
    external_url: str = ""
    routing_key: Opaque | None = None

    @property
    def firing(self) -> tuple[AlertSnapshot, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def example(self) -> AlertSnapshot:
        """The alert that stands for the group in one-line formats (the first firing one, else the first)."""
        return self.alerts[0]

    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first, rest = maps[0], maps[1:]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}
