"""``numeric_attribute``: an int attribute of a span or resource within ``[min_value, max_value]``.

As in the OTel Collector: 0 means an unset (open) bound, a value of another type reads as 0, and
``invert_match`` votes INVERTED_NOT_SAMPLED when a value is in range, else INVERTED_SAMPLED.
"""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.model import Trace
from pipelines.tail_sampling.config import NumericAttributeConfig
from pipelines.tail_sampling.policies.base import Decision, scan_attribute

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class NumericAttribute:
    __slots__ = ("invert", "key", "max", "min", "name")

    def __init__(self, name: str, cfg: NumericAttributeConfig) -> None:
        self.name = name
        self.key = cfg.key
        self.min = cfg.min_value or INT64_MIN
        self.max = cfg.max_value or INT64_MAX
        self.invert = cfg.invert_match

    def _matches(self, value: AnyValue, on_span: bool) -> bool:
        return self.min <= value.int_value <= self.max

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return scan_attribute(trace, self.key, self._matches, self.invert)
