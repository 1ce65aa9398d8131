"""Why events were bad: a bounded tally of root causes per time bucket.

A tally keeps at most ``max_causes`` distinct causes (the first ones seen in the bucket); bad events
of further causes are counted in ``other`` (and the caller counts the overflow in ``/metrics``). Each
cause keeps its count, the ids of its ``max_examples`` latest traces and the path of the latest one
(the error path, or the critical path of a slow signal). Tallies of several buckets merge into
:class:`CauseShare` s of the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

UNKNOWN = "unknown"  # a bad event whose cause was not found (no root_cause stage, or no matching failure)
OTHER = "other"  # bad events of causes beyond a bucket's bound


@dataclass(frozen=True, slots=True)
class CauseShare:
    """One cause over a window: its share of the window's bad events."""

    cause: str  # the root-cause service, UNKNOWN or OTHER
    count: float  # bad events (weighted: the oldest bucket of a window counts for the part inside it)
    share: float  # count / bad events of the window
    examples: tuple[str, ...]  # trace ids (hex), newest first
    path: tuple[str, ...]  # the latest example's path ("service:span name" from the signal down)


class CauseTally:
    """The causes of one bucket's bad events."""

    __slots__ = ("entries", "other")

    def __init__(self) -> None:
        # cause -> [count, trace ids (oldest first), path of the latest]
        self.entries: dict[str, list[Any]] = {}
        self.other = 0

    def add(self, cause: str, trace_id: str, path: tuple[str, ...], n: int, max_causes: int,
            max_examples: int) -> bool:
        """Count ``n`` bad events of ``cause``; False when the bucket is full and they went to ``other``."""
        entry = self.entries.get(cause)
        if entry is None:
            if len(self.entries) >= max_causes:
                self.other += n
                return False
            entry = self.entries[cause] = [0, [], path]
        entry[0] += n
        if trace_id:
            examples: list[str] = entry[1]
            if trace_id not in examples:
                examples.append(trace_id)
                if len(examples) > max_examples:
                    del examples[0]
            entry[2] = path
        return True

    @property
    def total(self) -> int:
        return self.other + sum(int(e[0]) for e in self.entries.values())

    def to_state(self) -> list[Any]:
        return [self.other, [[c, e[0], e[1], list(e[2])] for c, e in self.entries.items()]]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> CauseTally:
        t = cls()
        t.other = int(state[0])
        for cause, count, examples, path in state[1]:
            t.entries[str(cause)] = [int(count), [str(x) for x in examples], tuple(str(p) for p in path)]
        return t


def merge(tallies: Iterable[tuple[CauseTally, float]], max_examples: int) -> list[CauseShare]:
    """Tallies of a window, newest first, each with its weight -> causes by count, largest first (``other``
    last among equals). Shares are of every bad event tallied, ``other`` included."""
    counts: dict[str, float] = {}
    examples: dict[str, list[str]] = {}
    paths: dict[str, tuple[str, ...]] = {}
    other = 0.0
    for tally, weight in tallies:
        other += tally.other * weight
        for cause, (count, ids, path) in tally.entries.items():
            counts[cause] = counts.get(cause, 0.0) + count * weight
            have = examples.setdefault(cause, [])
            if cause not in paths and path:
                paths[cause] = path  # newest bucket first: its path is the latest
            for tid in reversed(ids):
                if len(have) < max_examples and tid not in have:
                    have.append(tid)
    if other > 0:
        counts[OTHER] = counts.get(OTHER, 0.0) + other
    total = sum(counts.values())
    if total <= 0:
        return []
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] == OTHER, kv[0]))
    return [CauseShare(c, n, n / total, tuple(examples.get(c, ())), paths.get(c, ())) for c, n in ranked]


def dominant(causes: Sequence[CauseShare], min_share: float) -> CauseShare | None:
    """The cause with the largest share, when that share is at least ``min_share`` and it is a service
    (not ``unknown`` or ``other``)."""
    if not causes:
        return None
    top = causes[0]
    if top.cause in (UNKNOWN, OTHER) or top.share < min_share:
        return None
    return top
