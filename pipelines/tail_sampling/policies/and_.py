"""``and``: SAMPLED when no sub-policy votes NOT_SAMPLED or INVERTED_NOT_SAMPLED (checked in order, stopping
at the first such vote), else NOT_SAMPLED. An inverted sample counts as a sample. A trace it samples was kept
with the product of its sub-policies' recorded probabilities."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from collector.model import Trace
from pipelines.tail_sampling.policies.base import (
    NOTE_PROBABILITY,
    Decision,
    Placement,
    Policy,
    PolicyEvaluationError,
    probability_of,
    record_probability,
)
from pipelines.tail_sampling.policies.registry import Build, SubPolicyConfig

_NO = (Decision.NOT_SAMPLED, Decision.INVERTED_NOT_SAMPLED)


@dataclass(frozen=True)
class AndConfig:
    and_sub_policy: tuple[SubPolicyConfig, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.and_sub_policy:
            yield "and_sub_policy", "must list at least one policy"


class And:
    __slots__ = ("name", "subs")

    config_class = AndConfig
    placement = Placement.TOP | Placement.COMPOSITE  # not inside and, drop or not

    @classmethod
    def from_config(cls, name: str, settings: AndConfig, build: Build) -> And:
        return cls(name, [build(sub) for sub in settings.and_sub_policy])

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
        if trace.note(NOTE_PROBABILITY) is not None:
            # Kept when every sub-policy keeps it: the product of the sub-policies' probabilities.
            p = 1.0
            for sub in self.subs:
                p *= probability_of(trace, sub.name)[0]
            if p < 1.0:
                record_probability(trace, self.name, p)
        return Decision.SAMPLED
