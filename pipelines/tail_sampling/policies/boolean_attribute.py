"""``boolean_attribute``: a bool attribute of a span or resource equal to ``value``.

A value of another type reads as false, as in the OTel Collector. ``invert_match`` votes
INVERTED_NOT_SAMPLED when one matches, else INVERTED_SAMPLED.
"""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.model import Trace
from pipelines.tail_sampling.config import BooleanAttributeConfig
from pipelines.tail_sampling.policies.base import Decision, scan_attribute


class BooleanAttribute:
    __slots__ = ("invert", "key", "name", "value")

    def __init__(self, name: str, cfg: BooleanAttributeConfig) -> None:
        self.name = name
        self.key = cfg.key
        self.value = cfg.value
        self.invert = cfg.invert_match

    def _matches(self, value: AnyValue, on_span: bool) -> bool:
        return value.bool_value is self.value

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return scan_attribute(trace, self.key, self._matches, self.invert)
