"""``always_sample``: every trace."""

from __future__ import annotations

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement
from pipelines.tail_sampling.policies.registry import Build


class AlwaysSample:
    __slots__ = ("name",)

    config_class = None  # no settings block
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: None, build: Build) -> AlwaysSample:
        return cls(name)

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return Decision.SAMPLED
