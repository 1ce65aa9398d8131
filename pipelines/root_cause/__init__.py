"""``root_cause`` processor: for every failed request, the span where the errors stop; for every slow one
(with a latency threshold), the span on its critical path where the time went.

A trace-level stage (see docs/design.md, "The root-cause walk" and "The latency walk (critical path)"):
``trace.notes[FAILURES]`` gets one :class:`Failure` per signal span in error (``kind`` "error") and one
per signal span longer than its ``latency_threshold`` and not in error (``kind`` "latency"); with
``annotate: true`` the signal span gets ``rootcause.*`` attributes;
``tracetriage_root_causes_total{signal, service, team, kind}`` counts primary root causes. Other stages
can ask for the latency cause of any span with :func:`latency_cause`.
"""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.root_cause.config import Config, Signal
from pipelines.root_cause.critical_path import find_slow, latency_cause
from pipelines.root_cause.model import ERROR, FAILURES, LATENCY, Failure, FailureKind, PathStep, RootCause
from pipelines.root_cause.processor import RootCauseProcessor
from pipelines.root_cause.walk import SignalMatcher, WalkResult, find_failures, in_error


def create(settings: Settings, config: Config, next_consumer: TracesConsumer | None = None) -> RootCauseProcessor:
    """Trace-level stages are fed by the pipeline's trace buffer: ``next_consumer`` is not used."""
    return RootCauseProcessor(settings, config)


factory = Factory(
    "root_cause", Kind.PROCESSOR, Config, create,
    description="Walks failed traces from each signal span down to where the errors stop, and slow ones along "
                "their critical path; annotates the signal.",
)

__all__ = [
    "ERROR",
    "FAILURES",
    "LATENCY",
    "Config",
    "Failure",
    "FailureKind",
    "PathStep",
    "RootCause",
    "RootCauseProcessor",
    "Signal",
    "SignalMatcher",
    "WalkResult",
    "create",
    "factory",
    "find_failures",
    "find_slow",
    "in_error",
    "latency_cause",
]
