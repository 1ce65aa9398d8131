"""Ground truth of a generated trace: where the root-cause walk of docs/design.md must end, and for a trace slowed by
a latency fault, which span the latency walk must blame.

The walk starts at the trace root when it is in error, follows every child in error, and the spans in
error with no child in error are the root causes; the primary one ended first (ties: deeper first, then
span id). A CLIENT root cause with no server child blames ``peer.service`` / ``server.address`` /
``db.system``. The generator computes this bottom-up while it builds the trace (the same result as the
top-down walk) from the spans exactly as it emits them.

Latency: ``latency_causes`` are the spans whose own time a latency fault lengthened (a service's
operation, or the CLIENT span of a call to a database or API), within the root span's synchronous calls
(not a consumer reached through a producer: that work is not part of the request's time). The first is
the one with the most own time (ties: deeper first, then the earlier start, then span id): with the fault
large against the topology's latencies, it is the span on the root's critical path with the largest
exclusive time, which the latency walk blames (a database or API by its ``peer.service`` /
``server.address`` / ``db.system``, as for errors). ``duration_ms`` is the root span's duration, for
deciding which traces are slow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A root-cause candidate while a trace is built: (end ns, depth, span id, blamed service, span name).
RootCauseTuple = tuple[int, int, bytes, str, str]
# A span a latency fault lengthened: (own time ns, depth, start ns, span id, blamed service, span name, end ns).
LatencyTuple = tuple[int, int, int, bytes, str, str, int]


@dataclass(frozen=True, slots=True)
class RootCause:
    service: str          # the blamed service (a database or API name for an uninstrumented callee)
    span_name: str
    span_id: str          # hex
    depth: int            # hops from the trace root
    end_time_unix_nano: int
    own_time_ms: float = 0.0  # latency causes: the span's own time, the fault's share included


@dataclass(frozen=True, slots=True)
class Truth:
    trace_id: str         # hex
    scenario: str
    entrypoint: str       # "service/operation"
    faults: tuple[str, ...]   # labels of the faults that took effect in this trace
    error: bool           # the root span is in error
    root_causes: tuple[RootCause, ...]  # primary first
    spans: int
    duration_ms: float = 0.0  # the root span's
    latency_causes: tuple[RootCause, ...] = ()  # the one to blame first (see the module docstring)

    @property
    def primary(self) -> str | None:
        return self.root_causes[0].service if self.root_causes else None

    @property
    def latency_primary(self) -> str | None:
        """The service the latency walk must blame when the root is slow (None: no latency fault in it)."""
        return self.latency_causes[0].service if self.latency_causes else None

    @property
    def services(self) -> tuple[str, ...]:
        """Root-cause services, primary first, each once."""
        return tuple(dict.fromkeys(rc.service for rc in self.root_causes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "scenario": self.scenario,
            "entrypoint": self.entrypoint,
            "faults": list(self.faults),
            "error": self.error,
            "primary": self.primary,
            "root_causes": list(self.services),
            "root_cause_spans": [
                {"service": rc.service, "span_name": rc.span_name, "span_id": rc.span_id, "depth": rc.depth,
                 "end_time_unix_nano": rc.end_time_unix_nano}
                for rc in self.root_causes
            ],
            "spans": self.spans,
            "duration_ms": self.duration_ms,
            "latency_primary": self.latency_primary,
            "latency_cause_spans": [
                {"service": rc.service, "span_name": rc.span_name, "span_id": rc.span_id, "depth": rc.depth,
                 "end_time_unix_nano": rc.end_time_unix_nano, "own_time_ms": rc.own_time_ms}
                for rc in self.latency_causes
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Truth:
        return cls(
            trace_id=d["trace_id"], scenario=d["scenario"], entrypoint=d.get("entrypoint", ""),
            faults=tuple(d.get("faults", ())), error=bool(d["error"]),
            root_causes=tuple(RootCause(r["service"], r["span_name"], r["span_id"], int(r["depth"]),
                                        int(r["end_time_unix_nano"])) for r in d.get("root_cause_spans", ())),
            spans=int(d.get("spans", 0)),
            duration_ms=float(d.get("duration_ms", 0.0)),
            latency_causes=tuple(
                RootCause(r["service"], r["span_name"], r["span_id"], int(r["depth"]), int(r["end_time_unix_nano"]),
                          float(r.get("own_time_ms", 0.0))) for r in d.get("latency_cause_spans", ())),
        )


def order_root_causes(found: list[RootCauseTuple]) -> tuple[RootCause, ...]:
    """Primary first: ended first, ties deeper first, then span id."""
    found.sort(key=lambda r: (r[0], -r[1], r[2]))
    return tuple(RootCause(service, name, sid.hex(), depth, end) for end, depth, sid, service, name in found)


def order_latency_causes(found: list[LatencyTuple]) -> tuple[RootCause, ...]:
    """The one to blame first: most own time, ties deeper first, then earlier start, then span id."""
    found.sort(key=lambda r: (-r[0], -r[1], r[2], r[3]))
    return tuple(RootCause(service, name, sid.hex(), depth, end, own / 1e6)
                 for own, depth, _, sid, service, name, end in found)
