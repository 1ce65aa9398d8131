"""``not``: the opposite of its sub-policy's SAMPLED / NOT_SAMPLED vote; other votes (the inverted ones
among them) pass through unchanged, as in the OTel Collector."""

from __future__ import annotations

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Policy

_FLIP = {Decision.SAMPLED: Decision.NOT_SAMPLED, Decision.NOT_SAMPLED: Decision.SAMPLED}


class Not:
    __slots__ = ("name", "sub")

    def __init__(self, name: str, sub: Policy) -> None:
        self.name = name
        self.sub = sub

    def evaluate(self, trace: Trace, now: float) -> Decision:
        decision = self.sub.evaluate(trace, now)
        return _FLIP.get(decision, decision)
