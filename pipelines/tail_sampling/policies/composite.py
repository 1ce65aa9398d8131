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
from collections.abc import Sequence

from collector.model import Trace
from pipelines.tail_sampling.config import CompositeConfig
from pipelines.tail_sampling.policies.base import Decision, Policy

_YES = (Decision.SAMPLED, Decision.INVERTED_SAMPLED)


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
                    self.last_sub = sub.policy.name
                    return Decision.SAMPLED
                return Decision.NOT_SAMPLED
        return Decision.NOT_SAMPLED
