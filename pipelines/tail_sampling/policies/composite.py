"""``composite``: sub-policies in order, each with a per-second span budget.

The first sub-policy that votes to sample (SAMPLED or INVERTED_SAMPLED) decides: the trace is SAMPLED if
its spans fit both that sub-policy's budget and the total (``max_total_spans_per_second``) for the current
clock second, else NOT_SAMPLED (and nothing is counted, so a smaller trace may still fit). When no
sub-policy votes to sample, NOT_SAMPLED. Budgets restart each whole second of ``now``.

Budgets (see :func:`allocate`): ``percent`` of the total for sub-policies in ``rate_allocation`` (percent 0:
an equal share, total / number of sub-policies, as in the OTel Collector); sub-policies without an entry
share what the entries leave, each up to all of it ("use always_sample last to fill the remaining
capacity", as the contrib README suggests; contrib itself gives them nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from collector.config import field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import (
    NOTE_COMPOSITE,
    Decision,
    Placement,
    Policy,
    probability_of,
    record_probability,
)
from pipelines.tail_sampling.policies.registry import Build, CompositeSubPolicyConfig

_YES = (Decision.SAMPLED, Decision.INVERTED_SAMPLED)


@dataclass(frozen=True)
class RateAllocationConfig:
    policy: str = ""
    percent: int = field(0, ge=0, le=100)


@dataclass(frozen=True)
class CompositeConfig:
    """Sub-policies tried in ``policy_order`` (then any not named there, in list order); the first that
    samples decides, within its per-second span budget: ``percent`` of ``max_total_spans_per_second`` from
    ``rate_allocation`` (an entry with percent 0: an equal share), and for sub-policies without an entry
    what the entries leave unallocated. All sub-policies together stay within the total."""

    max_total_spans_per_second: int = field(0, ge=0)
    policy_order: tuple[str, ...] = ()
    composite_sub_policy: tuple[CompositeSubPolicyConfig, ...] = ()
    rate_allocation: tuple[RateAllocationConfig, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.max_total_spans_per_second <= 0:
            yield "max_total_spans_per_second", "must be > 0"
        if not self.composite_sub_policy:
            yield "composite_sub_policy", "must list at least one policy"
        names: set[str] = set()
        for i, sub in enumerate(self.composite_sub_policy):
            if not sub.name:
                yield f"composite_sub_policy[{i}].name", "must not be empty (policy_order and rate_allocation use it)"
            elif sub.name in names:
                yield f"composite_sub_policy[{i}].name", f"duplicate sub-policy name {sub.name!r}"
            names.add(sub.name)
        seen: set[str] = set()
        for i, name in enumerate(self.policy_order):
            if name not in names:
                yield f"policy_order[{i}]", f"{name!r} is not the name of a composite_sub_policy"
            elif name in seen:
                yield f"policy_order[{i}]", f"{name!r} is listed twice"
            seen.add(name)
        seen = set()
        for i, alloc in enumerate(self.rate_allocation):
            if alloc.policy not in names:
                yield f"rate_allocation[{i}].policy", f"{alloc.policy!r} is not the name of a composite_sub_policy"
            elif alloc.policy in seen:
                yield f"rate_allocation[{i}].policy", f"{alloc.policy!r} is allocated twice"
            seen.add(alloc.policy)
        total = sum(a.percent for a in self.rate_allocation)
        if total > 100:
            yield "rate_allocation", f"percents add up to {total}, more than 100"


def allocate(cfg: CompositeConfig) -> dict[str, int]:
    """Spans per second for each sub-policy name."""
    total = cfg.max_total_spans_per_second
    subs = len(cfg.composite_sub_policy) or 1
    budgets: dict[str, int] = {}
    for alloc in cfg.rate_allocation:
        share = alloc.percent / 100 * total if alloc.percent > 0 else total / subs
        budgets[alloc.policy] = int(share)
    left = max(0, total - sum(budgets.values()))
    for sub in cfg.composite_sub_policy:
        budgets.setdefault(sub.name, left)
    return budgets


class _Sub:
    __slots__ = ("budget", "policy", "used")

    def __init__(self, policy: Policy, budget: int) -> None:
        self.policy = policy
        self.budget = budget
        self.used = 0


class Composite:
    __slots__ = ("last_sub", "max_total", "name", "second", "subs", "used")

    config_class = CompositeConfig
    placement = Placement.TOP

    @classmethod
    def from_config(cls, name: str, settings: CompositeConfig, build: Build) -> Composite:
        return cls(name, settings, [build(sub) for sub in settings.composite_sub_policy])

    def __init__(self, name: str, cfg: CompositeConfig, subs: Sequence[Policy]) -> None:
        self.name = name
        self.max_total = cfg.max_total_spans_per_second
        budgets = allocate(cfg)
        by_name = {p.name: p for p in subs}
        order = [n for n in cfg.policy_order if n in by_name]
        order += [p.name for p in subs if p.name not in order]
        self.subs = tuple(_Sub(by_name[n], budgets.get(n, 0)) for n in order)
        self.second = -1
        self.used = 0
        self.last_sub = ""  # the sub-policy that sampled the last trace sampled here

    def evaluate(self, trace: Trace, now: float) -> Decision:
        second = math.floor(now)
        if second != self.second:
            self.second = second
            self.used = 0
            for sub in self.subs:
                sub.used = 0
        for sub in self.subs:
            if sub.policy.evaluate(trace, now) in _YES:
                n = trace.span_count
                if sub.used + n <= sub.budget and self.used + n <= self.max_total:
                    sub.used += n
                    self.used += n
                    self.last_sub = name = sub.policy.name
                    trace.notes[NOTE_COMPOSITE] = name
                    p, consistent = probability_of(trace, name)
                    if p < 1.0:
                        record_probability(trace, self.name, p, consistent)
                    return Decision.SAMPLED
                return Decision.NOT_SAMPLED
        return Decision.NOT_SAMPLED
