"""``slo`` processor: service-level objectives measured on 100 % of traces, before sampling.

Objectives are OpenSLO v1 documents (files, reloaded when they change, or inline in the config) whose
indicator has ``metricSource.type: tracetriage``: which signal spans count, and whether a span is good
by availability (not in error) or latency (fast enough). See :mod:`pipelines.slo.openslo` for the keys.

A trace-level stage: put it after ``root_cause`` (bad events are tallied by their root cause) and before
``tail_sampling`` (so it sees every trace). It counts good and bad signal spans in time buckets
(bounded memory whatever the window), evaluates multi-window, multi-burn-rate alerts (SRE Workbook
defaults), exports ``tracetriage_slo_*`` metrics, checkpoints its state through ``file_storage``, and
hands burning objectives to ``alert_routing`` (``trigger: slo`` or ``both``), which pages the owner of
the dominant root cause. ``tracetriage slo rules`` writes the same alerts as Prometheus rules.

Layout: ``openslo`` (documents -> objectives), ``model`` (objective types), ``source`` (files, reload),
``select`` (signal spans from wire bytes), ``window`` / ``causes`` / ``histogram`` (bounded buckets),
``burn`` (burn rates, budget, alerts), ``checkpoint`` (state on disk), ``processor`` (the stage),
``rules`` (Prometheus rules).
"""

from __future__ import annotations

from collector import Factory, Kind
from pipelines.slo.burn import AlertStatus, ObjectiveStatus, SloBurn
from pipelines.slo.config import BurnAlertConfig, Config
from pipelines.slo.model import BurnAlertSpec, Indicator, Objective, Selector
from pipelines.slo.openslo import ObjectiveError, Problem
from pipelines.slo.processor import SloProcessor, create

factory = Factory(
    "slo", Kind.PROCESSOR, Config, create,
    description="Measures OpenSLO objectives on every trace; burn-rate alerts routed to the root cause's owner.",
)

__all__ = [
    "AlertStatus",
    "BurnAlertConfig",
    "BurnAlertSpec",
    "Config",
    "Indicator",
    "Objective",
    "ObjectiveError",
    "ObjectiveStatus",
    "Problem",
    "Selector",
    "SloBurn",
    "SloProcessor",
    "create",
    "factory",
]
