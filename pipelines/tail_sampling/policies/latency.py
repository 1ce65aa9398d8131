"""``latency``: the trace's duration, from its earliest span start to its latest span end.

As in the OTel Collector the duration grows span by span (in stored order) and the trace is sampled as
soon as it is in range: ``>= threshold_ms`` without an upper bound, else ``threshold_ms < d <=
upper_threshold_ms`` (whole milliseconds, truncated toward zero). The trace's earliest start and latest end
are kept by the trace buffer as spans arrive, so the common case reads no span. Since the running duration never
shrinks, the whole trace's duration decides, except with an upper bound when the whole trace is longer
than it: then the spans are walked in order to find a moment when the duration was in range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement
from pipelines.tail_sampling.policies.registry import Build

MS = 1_000_000


@dataclass(frozen=True)
class LatencyConfig:
    """Trace duration (earliest start to latest end) ``>= threshold_ms``; with ``upper_threshold_ms``,
    ``threshold_ms < duration <= upper_threshold_ms``."""

    threshold_ms: int = field(0, ge=0)
    upper_threshold_ms: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.upper_threshold_ms and self.upper_threshold_ms <= self.threshold_ms:
            yield ("upper_threshold_ms",
                   f"must be greater than threshold_ms ({self.threshold_ms}), or 0 for no upper bound")


class Latency:
    __slots__ = ("lower_ms", "min_ns", "name", "over_ns", "upper_ms")

    config_class = LatencyConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: LatencyConfig, build: Build) -> Latency:
        return cls(name, settings)

    def __init__(self, name: str, cfg: LatencyConfig) -> None:
        self.name = name
        self.lower_ms = cfg.threshold_ms
        self.upper_ms = cfg.upper_threshold_ms
        if self.upper_ms:  # ms in (lower, upper]  <=>  (lower + 1) * MS <= ns < (upper + 1) * MS
            self.min_ns = (self.lower_ms + 1) * MS
            self.over_ns = (self.upper_ms + 1) * MS
        else:  # ms >= lower  <=>  ns >= lower * MS (for lower 0: ns > -MS, truncation toward zero)
            self.min_ns = self.lower_ms * MS if self.lower_ms else -MS + 1
            self.over_ns = 0

    def _in_range(self, ns: int) -> bool:
        return ns >= self.min_ns and (not self.over_ns or ns < self.over_ns)

    def evaluate(self, trace: Trace, now: float) -> Decision:
        lo, hi = trace.start, trace.end  # kept by the trace buffer as spans arrive: no decoding
        if lo < 0:
            return Decision.NOT_SAMPLED  # no spans
        if lo == 0:
            return self._walk(trace)  # a span without a start: follow contrib's running minimum exactly
        d = hi - lo
        if self._in_range(d):
            return Decision.SAMPLED
        if self.over_ns and d >= self.over_ns:
            return self._walk(trace)  # too long now, but maybe in range after some span
        return Decision.NOT_SAMPLED

    def evaluate_all(self, traces: list[Trace], now: float) -> list[Decision]:
        """``evaluate`` of each: the common case (a start, no upper bound) inline."""
        if self.over_ns:
            return [self.evaluate(t, now) for t in traces]
        min_ns, evaluate = self.min_ns, self.evaluate
        sampled, not_sampled = Decision.SAMPLED, Decision.NOT_SAMPLED
        return [(sampled if t.end - t.start >= min_ns else not_sampled) if t.start > 0 else evaluate(t, now)
                for t in traces]

    def _walk(self, trace: Trace) -> Decision:
        lo = hi = 0
        for group in trace.groups():
            for span in group.scope_spans.spans:
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                if lo == 0 or start < lo:
                    lo = start
                if hi == 0 or end > hi:
                    hi = end
                if self._in_range(hi - lo):
                    return Decision.SAMPLED
        return Decision.NOT_SAMPLED
