"""Ground truth of a generated trace: where DESIGN's root-cause walk must end.

The walk starts at the trace root when it is in error, follows every child in error, and the spans in
error with no child in error are the root causes; the primary one ended first (ties: deeper first, then
span id). A CLIENT root cause with no server child blames ``peer.service`` / ``server.address`` /
``db.system``. The generator computes this bottom-up while it builds the trace (the same result as the
top-down walk) from the spans exactly as it emits them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A root-cause candidate while a trace is built: (end ns, depth, span id, blamed service, span name).
RootCauseTuple = tuple[int, int, bytes, str, str]


@dataclass(frozen=True, slots=True)
class RootCause:
    service: str          # the blamed service (a database or API name for an uninstrumented callee)
    span_name: str
    span_id: str          # hex
    depth: int            # hops from the trace root
    end_time_unix_nano: int


@dataclass(frozen=True, slots=True)
class Truth:
    trace_id: str         # hex
    scenario: str
    entrypoint: str       # "service/operation"
    faults: tuple[str, ...]   # labels of the faults that took effect in this trace
    error: bool           # the root span is in error
    root_causes: tuple[RootCause, ...]  # primary first
    spans: int

    @property
    def primary(self) -> str | None:
        return self.root_causes[0].service if self.root_causes else None

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
        )


def order_root_causes(found: list[RootCauseTuple]) -> tuple[RootCause, ...]:
    """Primary first: ended first, ties deeper first, then span id."""
    found.sort(key=lambda r: (r[0], -r[1], r[2]))
    return tuple(RootCause(service, name, sid.hex(), depth, end) for end, depth, sid, service, name in found)
