"""What an objective is once read: the signal spans it measures, its kind of SLI, target, window, alerts.

Built by :mod:`pipelines.slo.openslo` from OpenSLO documents (files or inline in the config); read by
the measuring stage, the burn evaluator, ``alert_routing`` and the Prometheus rules generator.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

SliKind = Literal["availability", "latency"]

# The Google SRE Workbook's multi-window, multi-burn-rate alerts (chapter 5, table 5-8), for a 30-day
# window; the burn rates are kept as they are for other windows, as Sloth and Pyrra do.
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_text(seconds: float) -> str:
    """``300 -> "5m"``, ``3600 -> "1h"``, ``259200 -> "3d"``: the largest unit that divides it."""
    s = int(seconds)
    for unit in ("d", "h", "m"):
        if s and s % SECONDS[unit] == 0:
            return f"{s // SECONDS[unit]}{unit}"
    return f"{s}s"


@dataclass(frozen=True, slots=True)
class BurnAlertSpec:
    """Alert while the error rate over both windows exceeds ``burn_rate`` times the error budget rate."""

    severity: str
    burn_rate: float
    long_window: float  # seconds
    short_window: float  # seconds

    @property
    def long_text(self) -> str:
        return duration_text(self.long_window)

    @property
    def short_text(self) -> str:
        return duration_text(self.short_window)

    def __str__(self) -> str:
        return f"{self.severity} {self.burn_rate:g}x {self.long_text}/{self.short_text}"


SRE_WORKBOOK_ALERTS = (
    BurnAlertSpec("page", 14.4, 3600, 300),
    BurnAlertSpec("page", 6.0, 6 * 3600, 1800),
    BurnAlertSpec("ticket", 1.0, 3 * 86400, 6 * 3600),
)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which spans are signal spans: every criterion given must hold.

    ``service`` is the resource's ``service.name``; ``span_name`` is compared whole, ``span_name_regex``
    is searched anywhere in the name (anchor it with ``^...$``); ``attributes`` are span attributes whose
    value, as text (``true``, ``200``, ``GET``), must equal the one given."""

    service: str = ""
    span_name: str = ""
    span_name_regex: str = ""
    attributes: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        parts = [self.service or "*", ":", self.span_name or (f"/{self.span_name_regex}/" if self.span_name_regex
                                                                else "*")]
        text = "".join(parts)
        if self.attributes:
            text += " {" + ", ".join(f"{k}={v}" for k, v in self.attributes) + "}"
        return text


@dataclass(frozen=True, slots=True)
class Indicator:
    """The SLI: which spans count, and which of them are good.

    * ``availability``: good when the signal span is not in error (the root-cause definition: status
      ERROR, or status not OK and attribute ``error`` = true, is in error).
    * ``latency``: good when the span's duration is at most ``threshold_ms`` (``inclusive``) or below
      it (``inclusive`` False, OpenSLO ``op: lt``)."""

    name: str
    selector: Selector
    kind: SliKind
    threshold_ms: float = 0.0
    inclusive: bool = True

    def describe(self) -> str:
        if self.kind == "availability":
            return f"{self.selector.describe()} not in error"
        op = "<=" if self.inclusive else "<"
        return f"{self.selector.describe()} duration {op} {self.threshold_ms:g} ms"


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective of one OpenSLO SLO: the unit that is measured, burns and pages."""

    name: str  # the ``slo`` label: metadata.name, suffixed -1, -2 ... when the SLO has several objectives
    display_name: str
    description: str
    service: str  # OpenSLO spec.service, else the selector's service
    owner: str  # explicit owning team (annotation tracetriage.io/owner); "" = the owner of ``service``
    indicator: Indicator
    target: float  # e.g. 0.999
    window: float  # seconds of the rolling time window
    alerts: tuple[BurnAlertSpec, ...] | None  # None: the processor's burn_alerts
    min_cause_share: float | None  # None: the processor's min_cause_share
    source: str  # "file: document N" (or "processors.slo.slos[i]")

    @property
    def error_budget(self) -> float:
        """The fraction of events allowed to be bad: 1 - target."""
        return 1.0 - self.target

    @property
    def window_text(self) -> str:
        return duration_text(self.window)

    def fingerprint(self) -> str:
        """Identifies what is counted (selector and SLI): measured state is kept across reloads and
        restarts only while it is unchanged. The target, window and alerts may change freely."""
        ind = self.indicator
        data = [ind.kind, ind.threshold_ms, ind.inclusive, ind.selector.service, ind.selector.span_name,
                ind.selector.span_name_regex, list(ind.selector.attributes)]
        return hashlib.blake2b(json.dumps(data).encode(), digest_size=8).hexdigest()
