"""``not``: the opposite of its sub-policy's SAMPLED / NOT_SAMPLED vote; other votes (the inverted ones
among them) pass through unchanged, as in the OTel Collector."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement, Policy
from pipelines.tail_sampling.policies.registry import Build, SubPolicyConfig

_FLIP = {Decision.SAMPLED: Decision.NOT_SAMPLED, Decision.NOT_SAMPLED: Decision.SAMPLED}


@dataclass(frozen=True)
class NotConfig:
    not_sub_policy: SubPolicyConfig | None = None

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.not_sub_policy is None:
            yield "not_sub_policy", "is required"


class Not:
    __slots__ = ("name", "sub")

    config_class = NotConfig
    placement = Placement.TOP

    @classmethod
    def from_config(cls, name: str, settings: NotConfig, build: Build) -> Not:
        if settings.not_sub_policy is None:
            raise ValueError(f"policy {name!r}: not_sub_policy is required (config not validated?)")
        return cls(name, build(settings.not_sub_policy))

    def __init__(self, name: str, sub: Policy) -> None:
        self.name = name
        self.sub = sub

    def evaluate(self, trace: Trace, now: float) -> Decision:
        decision = self.sub.evaluate(trace, now)
        return _FLIP.get(decision, decision)
