"""``span_count``: ``min_spans <= spans in the trace <= max_spans`` (``max_spans`` 0: no upper bound)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement
from pipelines.tail_sampling.policies.registry import Build


@dataclass(frozen=True)
class SpanCountConfig:
    """``min_spans <= spans <= max_spans`` (``max_spans`` 0: no upper bound)."""

    min_spans: int = field(0, ge=0)
    max_spans: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.max_spans and self.max_spans < self.min_spans:
            yield "max_spans", f"must be >= min_spans ({self.min_spans}), or 0 for no upper bound"


class SpanCount:
    __slots__ = ("max", "min", "name")

    config_class = SpanCountConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: SpanCountConfig, build: Build) -> SpanCount:
        return cls(name, settings)

    def __init__(self, name: str, cfg: SpanCountConfig) -> None:
        self.name = name
        self.min = cfg.min_spans
        self.max = cfg.max_spans

    def evaluate(self, trace: Trace, now: float) -> Decision:
        n = trace.span_count
        if n >= self.min and (self.max == 0 or n <= self.max):
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED
