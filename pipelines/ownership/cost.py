"""What each team's telemetry costs: spans and wire bytes per owning team and outcome, measured where the
trace buffer decides (``received`` when it files spans; ``kept`` or ``dropped`` when their trace's fate is
known), and the services seen in traces that no catalog Component owns.

The ``ownership`` extension (the first one, when several are configured) registers one :class:`TeamCost` as
an outcome listener of every trace buffer. Bytes are the spans' wire bytes as received (before any stage
annotated them), so that for every team ``received`` = ``kept`` + ``dropped`` once no trace is pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector.model import Origin
from collector.telemetry import Telemetry
from pipelines.ownership.resolver import Ownership

MAX_ORIGINS = 4096  # origins whose team is remembered (cleared when full)
MAX_SERVICES = 10000  # services seen in traces that are remembered for the unowned count


class TeamCost:
    """A :class:`collector.component.TraceOutcomeListener` counting spans and bytes per team and outcome."""

    counts_spans = True

    def __init__(self, ownership: Ownership, telemetry: Telemetry) -> None:
        self._ownership = ownership
        self._spans = telemetry.counter("tracetriage_team_spans", "Spans per owning team and outcome at the trace "
                                        "buffer (received, kept, dropped).", ("team", "outcome"))
        self._bytes = telemetry.counter("tracetriage_team_bytes", "Span wire bytes per owning team and outcome at "
                                        "the trace buffer (received, kept, dropped).", ("team", "outcome"))
        self._unowned = telemetry.gauge("tracetriage_ownership_unowned_services",
                                        "Services seen in traces that no catalog Component owns.")
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._teams: dict[bytes, str] = {}  # resource fields -> team
        self._generation = -1  # the catalog generation the cached teams were resolved with
        self.services: dict[str, None] = {}  # service names seen in traces, first seen first

    def _team(self, origin: Origin) -> str:
        generation = self._ownership.generation
        if generation != self._generation:  # the catalog changed: resolve again
            self._generation = generation
            self._teams.clear()
            self._count_unowned()
        team = self._teams.get(origin.resource_fields)
        if team is None:
            if len(self._teams) >= MAX_ORIGINS:
                self._teams.clear()
            service = origin.service_name
            team = self._teams[origin.resource_fields] = self._ownership.owner_of(
                service, origin.string_attributes()).name
            if service not in self.services and len(self.services) < MAX_SERVICES:
                self.services[service] = None
                self._count_unowned()
        return team

    def _count_unowned(self) -> None:
        owned = {name.lower() for name in self._ownership.components()}
        self._unowned.set(sum(1 for s in self.services if s.lower() not in owned))

    def unowned_services(self) -> list[str]:
        """Services seen in traces that no catalog Component owns, sorted."""
        owned = {name.lower() for name in self._ownership.components()}
        return sorted(s for s in self.services if s.lower() not in owned)

    def _count(self, origin: Origin, outcome: str, spans: int, size: int) -> None:
        team = self._team(origin)
        children = self._children.get((team, outcome))
        if children is None:
            children = self._children[(team, outcome)] = (self._spans.labels(team, outcome),
                                                          self._bytes.labels(team, outcome))
        children[0].inc(spans)
        children[1].inc(size)

    # -- TraceOutcomeListener -------------------------------------------------------------------------------

    def spans_received(self, origin: Origin, spans: int, size: int) -> None:
        self._count(origin, "received", spans, size)

    def spans_decided(self, origin: Origin, spans: int, size: int, kept: bool) -> None:
        self._count(origin, "kept" if kept else "dropped", spans, size)

    def traces_decided(self, kept: Sequence[bytes], dropped: Sequence[bytes]) -> None:
        pass
