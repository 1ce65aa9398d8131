"""Burn rates, error budget and multi-window, multi-burn-rate alerts of one objective (pure functions).

* **Error ratio** of a window: bad / total signal spans in it.
* **Burn rate**: error ratio / (1 - target). At 1 the error budget lasts exactly the time window; at
  14.4 a 30-day budget is 2 % spent in an hour.
* **Error budget remaining** over the objective's time window: 1 - bad / ((1 - target) x total) (1 with
  no events; negative once overspent).
* An **alert fires while both its windows burn faster than its rate** (the SRE Workbook's rule): the
  long window shows the burn is significant, the short one that it is still going on, so a page
  resolves soon after a burn stops. Defaults: page 14.4x 1h/5m, page 6x 6h/30m, ticket 1x 3d/6h.

A firing alert carries a :class:`SloBurn`: the causes of the long window's bad events (their root
causes, from ``root_cause``), the dominant one (the largest share, if at least ``min_cause_share``),
and for a latency objective the percentiles of the signal spans' durations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipelines.slo.causes import CauseShare, dominant
from pipelines.slo.model import BurnAlertSpec, Objective, duration_text
from pipelines.slo.window import Series

PERCENTILES = (0.5, 0.9, 0.99)
MAX_CAUSES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class WindowRate:
    window: float  # seconds
    good: float
    bad: float

    @property
    def total(self) -> float:
        return self.good + self.bad

    @property
    def error_ratio(self) -> float:
        total = self.good + self.bad
        return self.bad / total if total > 0 else 0.0

    def burn_rate(self, budget: float) -> float:
        return self.error_ratio / budget if budget > 0 else 0.0


@dataclass(frozen=True, slots=True)
class AlertStatus:
    spec: BurnAlertSpec
    long: WindowRate
    short: WindowRate
    long_burn: float
    short_burn: float
    firing: bool
    burn: SloBurn | None = None  # when firing


@dataclass(frozen=True, slots=True)
class ObjectiveStatus:
    objective: Objective
    at: float  # the clock's time (unix seconds) of the evaluation
    period: WindowRate  # the objective's time window
    budget_remaining: float
    burn_rates: dict[str, float]  # window ("5m", "1h", "28d") -> burn rate
    alerts: tuple[AlertStatus, ...]


@dataclass(slots=True)
class SloBurn:
    """A burning objective, as ``alert_routing`` pages it (the example of its alert)."""

    objective: Objective
    spec: BurnAlertSpec
    long_burn: float
    short_burn: float
    budget_remaining: float
    causes: tuple[CauseShare, ...]  # the long window's, largest first (at most MAX_CAUSES_SHOWN)
    dominant: CauseShare | None
    min_cause_share: float
    percentiles: dict[str, float] = field(default_factory=dict)  # latency: "p50" -> ms over the long window
    since: float = 0.0  # unix time the alert started firing
    trace_id: bytes = b""  # an example trace of the dominant (else the largest) cause

    @property
    def service(self) -> str:
        """The dominant cause's service, else the objective's service."""
        return self.dominant.cause if self.dominant is not None else self.objective.service

    def summary(self) -> str:
        o, s = self.objective, self.spec
        text = (f"SLO {o.name} burning its error budget {self.long_burn:.1f}x over {s.long_text} and "
                f"{self.short_burn:.1f}x over {s.short_text} (alert at {s.burn_rate:g}x)")
        if self.dominant is not None:
            text += f": {self.dominant.share:.0%} of bad events caused by {self.dominant.cause}"
        elif self.causes:
            text += f": no cause reaches {self.min_cause_share:.0%} of bad events"
        return text

    def annotations(self, trace_url: str) -> dict[str, str]:
        """The page's annotations (``alert_routing`` calls this when it notifies)."""
        o, s = self.objective, self.spec
        out = {
            "summary": self.summary(),
            "objective": f"{o.display_name}: {o.indicator.describe()}, target {o.target:.4g} over {o.window_text}",
            "burn_rate_long": f"{self.long_burn:.2f}",
            "burn_rate_short": f"{self.short_burn:.2f}",
            "burn_rate_threshold": f"{s.burn_rate:g}",
            "error_budget_remaining": f"{self.budget_remaining:.4f}",
            "causes": "; ".join(_cause_text(c) for c in self.causes) or "no bad events tallied",
            "routed_to": (f"owner of {self.dominant.cause}, the dominant cause ({self.dominant.share:.0%})"
                          if self.dominant is not None else
                          f"owner of the objective (no cause reaches {self.min_cause_share:.0%})"),
        }
        if o.description:
            out["description"] = o.description
        top = self.dominant or (self.causes[0] if self.causes else None)
        if top is not None and top.path:
            key = "critical_path" if o.indicator.kind == "latency" else "path"
            out[key] = " -> ".join(top.path)
        if self.percentiles:
            out["latency_ms"] = ", ".join(f"{k} {v:.4g}" for k, v in self.percentiles.items())
        if self.trace_id:
            out["trace_id"] = self.trace_id.hex()
            if trace_url:
                out["trace_url"] = trace_url.format(trace_id=self.trace_id.hex())
        return out


def _cause_text(c: CauseShare) -> str:
    text = f"{c.cause} {c.share:.0%}"
    if c.examples:
        text += f" (traces {', '.join(c.examples)})"
    return text


def windows_of(objective: Objective, alerts: Sequence[BurnAlertSpec]) -> list[float]:
    """Every window the objective's burn rates are reported for: its alerts' and its time window."""
    ws = {a.long_window for a in alerts} | {a.short_window for a in alerts} | {objective.window}
    return sorted(ws)


def evaluate(objective: Objective, series: Series, now: float, alerts: Sequence[BurnAlertSpec],
             min_cause_share: float = 0.5, firing_since: dict[str, float] | None = None) -> ObjectiveStatus:
    """The objective's state at ``now`` (read from ``series``); ``firing_since`` (``str(spec)`` -> the time
    the alert started firing) is updated: set when an alert starts firing, removed when it stops."""
    budget = objective.error_budget
    rates: dict[float, WindowRate] = {}
    for w in windows_of(objective, alerts):
        g, b = series.sums(now, w)
        rates[w] = WindowRate(w, g, b)
    period = rates[objective.window]
    remaining = 1.0 - (period.bad / (budget * period.total)) if period.total > 0 and budget > 0 else 1.0
    statuses: list[AlertStatus] = []
    since = firing_since if firing_since is not None else {}
    for spec in alerts:
        key = str(spec)
        long, short = rates[spec.long_window], rates[spec.short_window]
        lb, sb = long.burn_rate(budget), short.burn_rate(budget)
        firing = lb > spec.burn_rate and sb > spec.burn_rate
        burn = None
        if firing:
            started = since.setdefault(key, now)
            burn = _burn(objective, series, now, spec, lb, sb, remaining, min_cause_share, started)
        else:
            since.pop(key, None)
        statuses.append(AlertStatus(spec, long, short, lb, sb, firing, burn))
    return ObjectiveStatus(
        objective=objective, at=now, period=period, budget_remaining=remaining,
        burn_rates={duration_text(w): r.burn_rate(budget) for w, r in rates.items()}, alerts=tuple(statuses),
    )


def _burn(objective: Objective, series: Series, now: float, spec: BurnAlertSpec, lb: float, sb: float,
          remaining: float, min_share: float, since: float) -> SloBurn:
    causes = series.causes(now, spec.long_window)
    top = dominant(causes, min_share)
    example = top or (causes[0] if causes else None)
    trace_id = b""
    if example is not None and example.examples:
        try:
            trace_id = bytes.fromhex(example.examples[0])
        except ValueError:
            trace_id = b""
    percentiles: dict[str, float] = {}
    got = series.percentiles(now, spec.long_window, PERCENTILES)
    if got is not None:
        percentiles = {f"p{q * 100:g}": v for q, v in zip(PERCENTILES, got, strict=True) if v is not None}
    return SloBurn(objective, spec, lb, sb, remaining, tuple(causes[:MAX_CAUSES_SHOWN]), top, min_share,
                   percentiles, since, trace_id)
