"""``span_count``: ``min_spans <= spans in the trace <= max_spans`` (``max_spans`` 0: no upper bound)."""

from __future__ import annotations

from collector.model import Trace
from pipelines.tail_sampling.config import SpanCountConfig
from pipelines.tail_sampling.policies.base import Decision


class SpanCount:
    __slots__ = ("max", "min", "name")

    def __init__(self, name: str, cfg: SpanCountConfig) -> None:
        self.name = name
        self.min = cfg.min_spans
        self.max = cfg.max_spans

    def evaluate(self, trace: Trace, now: float) -> Decision:
        n = trace.span_count
        if n >= self.min and (self.max == 0 or n <= self.max):
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED
