"""The recent-decisions ring: what ``tail_sampling`` decided for the last ``recent_decisions`` traces, and why.

Each entry is one small object (``__slots__``), kept in insertion order and evicted oldest first once the
ring holds ``capacity`` traces; the root-cause path is cut to :data:`MAX_PATH` steps and the alert groups to
:data:`MAX_GROUPS`, so the ring's memory is bounded by its capacity. :meth:`DecisionRing.lookup` answers
``GET /debug/traces/{trace_id}`` (see :func:`handler`) with a JSON-able dict: whether the trace was seen,
whether it is still buffered, and once decided: kept or dropped, by which policy, at what probability, its
root cause and path (from ``root_cause``'s notes) and the alert groups it fed (from ``alert_routing``'s),
and the late spans that arrived after the decision.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from collector.model import Trace
from pipelines.alert_routing.alerts import ALERT_GROUPS
from pipelines.root_cause.model import FAILURES, Failure

MAX_PATH = 16
MAX_GROUPS = 8
TRACE_ID_HEX = 32

# decision, kept, dry_run, policy, composite_policy, probability, consistent threshold, spans, decided_at (unix),
# decisions, root cause, alert groups
_Record = tuple[str, bool, bool, str, str, float, "int | None", int, float, int, "dict[str, Any] | None",
                tuple[str, ...]]


class Entry:
    """One decided trace, as :meth:`DecisionRing.get` shows it (the ring itself keeps a plain tuple per trace:
    cheaper to build on the hot path than an object)."""

    __slots__ = ("alert_groups", "composite_policy", "consistent", "decided_at", "decision", "decisions",
                 "dry_dropped", "dry_run", "kept", "late_dropped", "late_kept", "policy", "probability",
                 "root_cause", "spans")

    def __init__(self, record: _Record, late: list[int] | None) -> None:
        (self.decision, self.kept, self.dry_run, self.policy, self.composite_policy, self.probability,
         self.consistent, self.spans, self.decided_at, self.decisions, self.root_cause, groups) = record
        self.alert_groups: tuple[str, ...] = groups
        self.dry_dropped = self.dry_run and self.decision != "sampled"  # kept by a dry run only
        self.late_kept, self.late_dropped = late if late is not None else (0, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision, "kept": self.kept, "dry_run": self.dry_run,
            "would_keep": not self.dry_dropped, "policy": self.policy,
            "composite_policy": self.composite_policy, "probability": self.probability, "spans": self.spans,
            "decided_at": self.decided_at, "decisions": self.decisions, "root_cause": self.root_cause,
            "alert_groups": list(self.alert_groups),
            "late_spans": {"kept": self.late_kept, "dropped": self.late_dropped},
        }


def _root_cause(failures: list[Failure]) -> dict[str, Any]:
    f = failures[0]
    p = f.primary
    return {"kind": f.kind, "signal": f.signal, "service": p.service, "span_name": p.span_name,
            "span_id": p.span_id.hex(), "depth": p.depth, "path": list(p.path[:MAX_PATH]),
            "failures": len(failures)}


class DecisionRing:
    """Bounded map trace id -> decision record, oldest evicted first. ``pending`` answers whether the trace
    buffer still holds a trace (set by the buffer; None: not known)."""

    def __init__(self, capacity: int, wall: Callable[[], float] = time.time) -> None:
        self.capacity = capacity
        self._records: collections.OrderedDict[bytes, _Record] = collections.OrderedDict()
        self._late: dict[bytes, list[int]] = {}  # late spans kept, dropped; only for traces in _records
        self._wall = wall
        self.pending: Callable[[bytes], int | None] | None = None  # spans buffered for a trace id, or None
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._records)

    def record(self, trace: Trace, decision: str, kept: bool, policy: str, composite_policy: str,
               probability: float, consistent: int | None, dry_run: bool, at: float | None = None) -> None:
        """A decision: ``decision`` ("sampled", "not_sampled", "dropped") is what the policies decided,
        ``kept`` what happened (a dry run keeps everything); ``at``: unix time (now when None)."""
        if self.capacity <= 0:
            return
        records = self._records
        tid = trace.trace_id
        spans = trace.span_count
        decisions = 1
        notes = trace.note  # (root_cause's and alert_routing's notes; none on most traces)
        failures = notes(FAILURES)
        cause = _root_cause(failures) if failures else None
        groups: list[str] | None = notes(ALERT_GROUPS)
        old = records.get(tid)
        if old is not None:  # decided again (no decision cache: its late spans made a new trace)
            spans += old[7]
            decisions += old[9]
            cause = cause or old[10]
            groups = groups or list(old[11])
            records.move_to_end(tid)
        elif len(records) >= self.capacity:
            gone, _ = records.popitem(last=False)
            self._late.pop(gone, None)
            self.evicted += 1
        records[tid] = (decision, kept, dry_run, policy, composite_policy, probability, consistent, spans,
                        self._wall() if at is None else at, decisions, cause,
                        tuple(groups[:MAX_GROUPS]) if groups else ())

    def late(self, trace_id: bytes, spans: int, kept: bool) -> Entry | None:
        """Spans that arrived after the decision (following the cached decision); the entry, if still held."""
        record = self._records.get(trace_id)
        if record is None:
            return None
        counts = self._late.get(trace_id)
        if counts is None:
            counts = self._late[trace_id] = [0, 0]
        counts[0 if kept else 1] += spans
        return Entry(record, counts)

    def get(self, trace_id: bytes) -> Entry | None:
        record = self._records.get(trace_id)
        return None if record is None else Entry(record, self._late.get(trace_id))

    def lookup(self, trace_id: bytes) -> dict[str, Any] | None:
        """What is known of a trace: None when it was never seen (or has left the ring and the buffer)."""
        entry = self.get(trace_id)
        buffered = self.pending(trace_id) if self.pending is not None else None
        if entry is None and buffered is None:
            return None
        out: dict[str, Any] = {"trace_id": trace_id.hex(), "seen": True,
                               "state": "decided" if entry is not None else "buffered"}
        if buffered is not None:
            out["buffered_spans"] = buffered
            if entry is not None:
                out["state"] = "buffered"  # decided before (no decision cache) and buffered again
        if entry is not None:
            out.update(entry.as_dict())
        return out


def parse_trace_id(text: str) -> bytes:
    """32 hex characters -> 16 bytes. Raises ValueError naming what is wrong."""
    if len(text) != TRACE_ID_HEX:
        raise ValueError(f"trace id must be {TRACE_ID_HEX} hex characters, got {len(text)}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"trace id {text!r} is not hexadecimal") from None
    if raw == bytes(16):
        raise ValueError("trace id must not be all zeros")
    return raw


def handler(lookup: Callable[[bytes], dict[str, Any] | None]) -> Callable[[web.Request, str],
                                                                          Any]:
    """The ``/debug/traces/{trace_id}`` route over ``lookup``: 400 for a malformed id, 404 ``{"seen": false}``
    for a trace never seen, else 200 with what is known."""

    async def serve(request: web.Request, tail: str) -> web.StreamResponse:
        try:
            trace_id = parse_trace_id(tail.lower())
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        found = lookup(trace_id)
        if found is None:
            return web.json_response({"trace_id": trace_id.hex(), "seen": False}, status=404)
        return web.json_response(found)

    return serve


__all__ = ["MAX_GROUPS", "MAX_PATH", "DecisionRing", "Entry", "handler", "parse_trace_id"]
