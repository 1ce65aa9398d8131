"""``always_sample``: every trace."""

from __future__ import annotations

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision


class AlwaysSample:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return Decision.SAMPLED
