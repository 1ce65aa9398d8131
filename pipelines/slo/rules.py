"""``tracetriage slo rules``: the slo processors' objectives as Prometheus recording and alerting rules, in a
PrometheusRule manifest (``monitoring.coreos.com/v1``), for teams that alert from Prometheus.

The rules read ``tracetriage_slo_events_total{slo, outcome}`` (what the ``slo`` stage exports) and follow
Sloth's layout, labelled by ``slo`` (and ``window``):

* ``slo:sli_error:ratio_rate<window>``: bad / all signal spans over each window the alerts use (and 5m);
  ``slo:sli_error:ratio_rate<time window>`` averages the 5m ratio over the objective's time window.
* ``slo:objective:ratio``, ``slo:error_budget:ratio``, ``slo:time_period:days``,
  ``slo:current_burn_rate:ratio`` (5m), ``slo:period_burn_rate:ratio`` and
  ``slo:period_error_budget_remaining:ratio``.
* One ``SLOBurn`` alert per burn-rate alert of the objective, firing while both windows exceed the rate,
  labelled as ``alert_routing`` labels its pages (``slo``, ``severity``, ``long_window``,
  ``short_window``; ``team`` when the objective names its owner). What Prometheus cannot do is route
  the page to the owner of the dominant root cause: for that, page from ``alert_routing``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from pipelines.ownership import normalise_team
from pipelines.slo import openslo
from pipelines.slo.config import Config
from pipelines.slo.model import BurnAlertSpec, Objective, duration_text

API_VERSION = "monitoring.coreos.com/v1"
EVENTS = "tracetriage_slo_events_total"
_GROUP_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def objectives_of(config: Config) -> list[tuple[Objective, tuple[BurnAlertSpec, ...]]]:
    """The objectives of one processor config, each with its burn-rate alerts. Raises ObjectiveError."""
    found = openslo.load_or_raise(config.files, config.slos, default_window=config.default_window)
    defaults = config.alert_specs
    return [(o, o.alerts if o.alerts is not None else defaults) for o in found]


def _q(value: str) -> str:
    """A PromQL string literal."""
    return json.dumps(value)


def objective_groups(o: Objective, alerts: Sequence[BurnAlertSpec]) -> list[dict[str, Any]]:
    sel = f"slo={_q(o.name)}"
    period = duration_text(o.window)
    windows = sorted({300.0} | {a.long_window for a in alerts} | {a.short_window for a in alerts})
    budget = o.error_budget
    safe = _GROUP_SAFE.sub("-", o.name)
    recordings: list[dict[str, Any]] = []
    for w in windows:
        text = duration_text(w)
        recordings.append({
            "record": f"slo:sli_error:ratio_rate{text}",
            "expr": f'sum(rate({EVENTS}{{{sel},outcome="bad"}}[{text}]))\n/\nsum(rate({EVENTS}{{{sel}}}[{text}]))\n',
            "labels": {"slo": o.name, "window": text},
        })
    if o.window not in windows:
        recordings.append({
            "record": f"slo:sli_error:ratio_rate{period}",
            "expr": (f"sum_over_time(slo:sli_error:ratio_rate5m{{{sel}}}[{period}])\n/ ignoring (window)\n"
                     f"count_over_time(slo:sli_error:ratio_rate5m{{{sel}}}[{period}])\n"),
            "labels": {"slo": o.name, "window": period},
        })
    meta = [
        {"record": "slo:objective:ratio", "expr": f"vector({o.target:.10g})", "labels": {"slo": o.name}},
        {"record": "slo:error_budget:ratio", "expr": f"vector({budget:.10g})", "labels": {"slo": o.name}},
        {"record": "slo:time_period:days", "expr": f"vector({o.window / 86400:.10g})", "labels": {"slo": o.name}},
        {"record": "slo:current_burn_rate:ratio",
         "expr": (f"slo:sli_error:ratio_rate5m{{{sel}}}\n/ on(slo) group_left\n"
                  f"slo:error_budget:ratio{{{sel}}}\n"),
         "labels": {"slo": o.name}},
        {"record": "slo:period_burn_rate:ratio",
         "expr": (f"slo:sli_error:ratio_rate{period}{{{sel}}}\n/ on(slo) group_left\n"
                  f"slo:error_budget:ratio{{{sel}}}\n"),
         "labels": {"slo": o.name}},
        {"record": "slo:period_error_budget_remaining:ratio",
         "expr": f"1 - slo:period_burn_rate:ratio{{{sel}}}", "labels": {"slo": o.name}},
    ]
    alert_rules: list[dict[str, Any]] = []
    for a in alerts:
        threshold = f"({a.burn_rate:g} * {budget:.10g})"
        labels: dict[str, str] = {"slo": o.name, "severity": a.severity, "long_window": a.long_text,
                                  "short_window": a.short_text, "service": o.service}
        if o.owner:
            labels["team"] = normalise_team(o.owner)
        alert_rules.append({
            "alert": "SLOBurn",
            "expr": (f"(slo:sli_error:ratio_rate{a.long_text}{{{sel}}} > {threshold})\nand ignoring (window)\n"
                     f"(slo:sli_error:ratio_rate{a.short_text}{{{sel}}} > {threshold})\n"),
            "labels": {k: v for k, v in labels.items() if v},
            "annotations": {
                "summary": f"SLO {o.name} is burning its error budget more than {a.burn_rate:g}x over "
                           f"{a.long_text} and {a.short_text}",
                "description": f"{o.display_name}: {o.indicator.describe()}, target {o.target:.10g} over {period}. "
                               f"Error ratio over {a.long_text}: {{{{ $value | humanizePercentage }}}}.",
            },
        })
    return [
        {"name": f"tracetriage-slo-{safe}-sli-recordings", "rules": recordings},
        {"name": f"tracetriage-slo-{safe}-meta-recordings", "rules": meta},
        {"name": f"tracetriage-slo-{safe}-alerts", "rules": alert_rules},
    ]


def prometheus_rule(objectives: Sequence[tuple[Objective, Sequence[BurnAlertSpec]]], name: str = "tracetriage-slos",
                    namespace: str = "") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": "tracetriage",
                                                         "app.kubernetes.io/component": "slo"}}
    if namespace:
        metadata["namespace"] = namespace
    groups = [g for o, alerts in objectives for g in objective_groups(o, alerts)]
    return {"apiVersion": API_VERSION, "kind": "PrometheusRule", "metadata": metadata, "spec": {"groups": groups}}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(configs: Sequence[Config], name: str = "tracetriage-slos", namespace: str = "") -> str:
    """The PrometheusRule manifest (YAML) for the objectives of these ``slo`` processor configs. Raises
    ObjectiveError."""
    objectives = [pair for config in configs for pair in objectives_of(config)]
    seen: set[str] = set()
    for o, _ in objectives:
        if o.name in seen:
            raise openslo.ObjectiveError([openslo.Problem("", 0, "", f"objective {o.name!r} is defined by two "
                                                                     f"slo processors")])
        seen.add(o.name)
    manifest = prometheus_rule(objectives, name, namespace)
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
