"""``and``: SAMPLED when no sub-policy votes NOT_SAMPLED or INVERTED_NOT_SAMPLED (checked in order, stopping
at the first such vote), else NOT_SAMPLED. An inverted sample counts as a sample."""

from __future__ import annotations

from collections.abc import Sequence

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Policy, PolicyEvaluationError

_NO = (Decision.NOT_SAMPLED, Decision.INVERTED_NOT_SAMPLED)


class And:
    __slots__ = ("name", "subs")

    def __init__(self, name: str, subs: Sequence[Policy]) -> None:
        self.name = name
        self.subs = tuple(subs)

    def evaluate(self, trace: Trace, now: float) -> Decision:
        for sub in self.subs:
            decision = sub.evaluate(trace, now)
            if decision in _NO:
                return Decision.NOT_SAMPLED
            if decision is Decision.ERROR:
                raise PolicyEvaluationError(f"sub-policy {sub.name!r} of {self.name!r} failed")
        return Decision.SAMPLED
