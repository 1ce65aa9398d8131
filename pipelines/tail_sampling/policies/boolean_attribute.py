"""``boolean_attribute``: a bool attribute of a span or resource equal to ``value``.

A value of another type reads as false, as in the OTel Collector. ``invert_match`` votes
INVERTED_NOT_SAMPLED when one matches, else INVERTED_SAMPLED.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement, scan_attribute
from pipelines.tail_sampling.policies.registry import Build


@dataclass(frozen=True)
class BooleanAttributeConfig:
    key: str = ""
    value: bool = False
    invert_match: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"


class BooleanAttribute:
    __slots__ = ("invert", "key", "name", "value")

    config_class = BooleanAttributeConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: BooleanAttributeConfig, build: Build) -> BooleanAttribute:
        return cls(name, settings)

    def __init__(self, name: str, cfg: BooleanAttributeConfig) -> None:
        self.name = name
        self.key = cfg.key
        self.value = cfg.value
        self.invert = cfg.invert_match

    def _matches(self, value: AnyValue, on_span: bool) -> bool:
        return value.bool_value is self.value

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return scan_attribute(trace, self.key, self._matches, self.invert)
