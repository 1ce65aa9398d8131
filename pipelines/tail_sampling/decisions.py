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


class Entry:
    """One decided trace."""

    __slots__ = ("alert_groups", "composite_policy", "consistent", "decided_at", "decision", "decisions",
                 "dry_dropped", "dry_run", "kept", "late_dropped", "late_kept", "policy", "probability",
                 "root_cause", "spans")

    def __init__(self) -> None:
        self.decision = ""
        self.kept = False
        self.dry_run = False
        self.policy = ""
        self.composite_policy = ""
        self.probability = 1.0
        self.consistent: int | None = None  # the consistent threshold the probability came with
        self.dry_dropped = False  # a dry run kept it, but the policies would have dropped it
        self.spans = 0
        self.decided_at = 0.0
        self.decisions = 0
        self.root_cause: dict[str, Any] | None = None
        self.alert_groups: tuple[str, ...] = ()
        self.late_kept = 0
        self.late_dropped = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision, "kept": self.kept, "dry_run": self.dry_run,
            "would_keep": not self.dry_dropped, "policy": self.policy,
            "composite_policy": self.composite_policy, "probability": self.probability, "spans": self.spans,
            "decided_at": self.decided_at, "decisions": self.decisions, "root_cause": self.root_cause,
            "alert_groups": list(self.alert_groups),
            "late_spans": {"kept": self.late_kept, "dropped": self.late_dropped},
        }


def _root_cause(trace: Trace) -> dict[str, Any] | None:
    failures: list[Failure] | None = trace.note(FAILURES)
    if not failures:
        return None
    f = failures[0]
    p = f.primary
    return {"kind": f.kind, "signal": f.signal, "service": p.service, "span_name": p.span_name,
            "span_id": p.span_id.hex(), "depth": p.depth, "path": list(p.path[:MAX_PATH]),
            "failures": len(failures)}


class DecisionRing:
    """Bounded map trace id -> :class:`Entry`, oldest evicted first. ``pending`` answers whether the trace
    buffer still holds a trace (set by the buffer; None: not known)."""

    def __init__(self, capacity: int, wall: Callable[[], float] = time.time) -> None:
        self.capacity = capacity
        self._entries: collections.OrderedDict[bytes, Entry] = collections.OrderedDict()
        self._wall = wall
        self.pending: Callable[[bytes], int | None] | None = None  # spans buffered for a trace id, or None
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, trace_id: bytes) -> Entry:
        entries = self._entries
        entry = entries.get(trace_id)
        if entry is None:
            if len(entries) >= self.capacity:
                entries.popitem(last=False)
                self.evicted += 1
            entry = entries[trace_id] = Entry()
        else:
            entries.move_to_end(trace_id)
        return entry

    def record(self, trace: Trace, decision: str, kept: bool, policy: str, composite_policy: str,
               probability: float, consistent: int | None, dry_run: bool) -> None:
        """A decision: ``decision`` ("sampled", "not_sampled", "dropped") is what the policies decided,
        ``kept`` what happened (a dry run keeps everything)."""
        if self.capacity <= 0:
            return
        entry = self._entry(trace.trace_id)
        entry.decision = decision
        entry.kept = kept
        entry.dry_run = dry_run
        entry.dry_dropped = dry_run and decision != "sampled"
        entry.consistent = consistent
        entry.policy = policy
        entry.composite_policy = composite_policy
        entry.probability = probability
        entry.spans += trace.span_count
        entry.decided_at = self._wall()
        entry.decisions += 1
        cause = _root_cause(trace)
        if cause is not None:
            entry.root_cause = cause
        groups: list[str] | None = trace.note(ALERT_GROUPS)
        if groups:
            entry.alert_groups = tuple(groups[:MAX_GROUPS])

    def late(self, trace_id: bytes, spans: int, kept: bool) -> Entry | None:
        """Spans that arrived after the decision (following the cached decision); the entry, if still held."""
        entry = self._entries.get(trace_id)
        if entry is None:
            return None
        if kept:
            entry.late_kept += spans
        else:
            entry.late_dropped += spans
        return entry

    def get(self, trace_id: bytes) -> Entry | None:
        return self._entries.get(trace_id)

    def lookup(self, trace_id: bytes) -> dict[str, Any] | None:
        """What is known of a trace: None when it was never seen (or has left the ring and the buffer)."""
        entry = self._entries.get(trace_id)
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
