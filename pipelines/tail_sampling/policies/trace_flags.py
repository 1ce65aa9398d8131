"""``trace_flags``: a span with the W3C sampled flag (bit 0 of ``Span.flags``) set."""

from __future__ import annotations

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement
from pipelines.tail_sampling.policies.registry import Build

SAMPLED_FLAG = 0x01


class TraceFlags:
    __slots__ = ("name",)

    config_class = None  # no settings block
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: None, build: Build) -> TraceFlags:
        return cls(name)

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, trace: Trace, now: float) -> Decision:
        for group in trace.groups():
            for span in group.scope_spans.spans:
                if span.flags & SAMPLED_FLAG:
                    return Decision.SAMPLED
        return Decision.NOT_SAMPLED
