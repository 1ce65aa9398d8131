"""``drop``: DROPPED when every sub-policy votes to sample (as ``and``), else NOT_SAMPLED. A DROPPED vote
overrides every other policy's vote."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from collector.model import Trace
from pipelines.tail_sampling.policies.and_ import And
from pipelines.tail_sampling.policies.base import Decision, Placement, Policy
from pipelines.tail_sampling.policies.registry import Build, SubPolicyConfig


@dataclass(frozen=True)
class DropConfig:
    drop_sub_policy: tuple[SubPolicyConfig, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.drop_sub_policy:
            yield "drop_sub_policy", "must list at least one policy"


class Drop:
    __slots__ = ("_all", "name")

    config_class = DropConfig
    placement = Placement.TOP

    @classmethod
    def from_config(cls, name: str, settings: DropConfig, build: Build) -> Drop:
        return cls(name, [build(sub) for sub in settings.drop_sub_policy])

    def __init__(self, name: str, subs: Sequence[Policy]) -> None:
        self.name = name
        self._all = And(name, subs)

    def evaluate(self, trace: Trace, now: float) -> Decision:
        if self._all.evaluate(trace, now) is Decision.SAMPLED:
            return Decision.DROPPED
        return Decision.NOT_SAMPLED
