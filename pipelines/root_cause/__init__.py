"""``root_cause`` processor: for every failed request, the span where the errors stop.

A trace-level stage (see DESIGN.md "The root-cause walk"): ``trace.notes[FAILURES]`` gets one
:class:`Failure` per signal span in error; with ``annotate: true`` the signal span gets ``rootcause.*``
attributes; ``tracetriage_root_causes_total{signal, service, team}`` counts primary root causes.
"""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.root_cause.config import Config, Signal
from pipelines.root_cause.model import FAILURES, Failure, RootCause
from pipelines.root_cause.processor import RootCauseProcessor
from pipelines.root_cause.walk import SignalMatcher, WalkResult, find_failures, in_error


def create(settings: Settings, config: Config, next_consumer: TracesConsumer | None = None) -> RootCauseProcessor:
    """Trace-level stages are fed by the pipeline's trace buffer: ``next_consumer`` is not used."""
    return RootCauseProcessor(settings, config)


factory = Factory(
    "root_cause", Kind.PROCESSOR, Config, create,
    description="Walks failed traces from each signal span down to where the errors stop; annotates the signal.",
)

__all__ = [
    "FAILURES",
    "Config",
    "Failure",
    "RootCause",
    "RootCauseProcessor",
    "Signal",
    "SignalMatcher",
    "WalkResult",
    "create",
    "factory",
    "find_failures",
    "in_error",
]
