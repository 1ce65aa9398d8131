"""``rate_limiting``: at most ``spans_per_second`` spans of sampled traces per clock second.

The OTel Collector's rule: the count restarts each whole second of ``now``; a trace is sampled when the
spans sampled in this second plus its own stay strictly below ``spans_per_second``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement
from pipelines.tail_sampling.policies.registry import Build


@dataclass(frozen=True)
class RateLimitingConfig:
    spans_per_second: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.spans_per_second <= 0:
            yield "spans_per_second", "must be > 0"


class RateLimiting:
    __slots__ = ("limit", "name", "second", "spans")

    config_class = RateLimitingConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: RateLimitingConfig, build: Build) -> RateLimiting:
        return cls(name, settings)

    def __init__(self, name: str, cfg: RateLimitingConfig) -> None:
        self.name = name
        self.limit = cfg.spans_per_second
        self.second = -1
        self.spans = 0

    def evaluate(self, trace: Trace, now: float) -> Decision:
        second = math.floor(now)
        if second != self.second:
            self.second = second
            self.spans = 0
        total = self.spans + trace.span_count
        if total < self.limit:
            self.spans = total
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED
