"""``numeric_attribute``: an int attribute of a span or resource within ``[min_value, max_value]``.

As in the OTel Collector: 0 means an unset (open) bound, a value of another type reads as 0, and
``invert_match`` votes INVERTED_NOT_SAMPLED when a value is in range, else INVERTED_SAMPLED.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement, scan_attribute
from pipelines.tail_sampling.policies.registry import Build

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class NumericAttributeConfig:
    """An int attribute (span or resource) in ``[min_value, max_value]``. As in the OTel Collector, 0 means
    unset: an unset bound is open."""

    key: str = ""
    min_value: int = 0
    max_value: int = 0
    invert_match: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"
        if self.min_value == 0 and self.max_value == 0:
            yield "", "needs min_value or max_value (0 means unset, as in the OTel Collector)"
        elif self.min_value and self.max_value and self.min_value > self.max_value:
            yield "min_value", f"must be <= max_value ({self.max_value}), got {self.min_value}"


class NumericAttribute:
    __slots__ = ("invert", "key", "max", "min", "name")

    config_class = NumericAttributeConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: NumericAttributeConfig, build: Build) -> NumericAttribute:
        return cls(name, settings)

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
