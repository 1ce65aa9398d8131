"""``drop``: DROPPED when every sub-policy votes to sample (as ``and``), else NOT_SAMPLED. A DROPPED vote
overrides every other policy's vote."""

from __future__ import annotations

from collections.abc import Sequence

from collector.model import Trace
from pipelines.tail_sampling.policies.and_ import And
from pipelines.tail_sampling.policies.base import Decision, Policy


class Drop:
    __slots__ = ("_all", "name")

    def __init__(self, name: str, subs: Sequence[Policy]) -> None:
        self.name = name
        self._all = And(name, subs)

    def evaluate(self, trace: Trace, now: float) -> Decision:
        if self._all.evaluate(trace, now) is Decision.SAMPLED:
            return Decision.DROPPED
        return Decision.NOT_SAMPLED
