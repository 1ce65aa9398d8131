"""``string_attribute``: a string attribute of a span or resource equal to one of ``values``.

With ``enabled_regex_matching`` the values are regular expressions searched anywhere in the attribute
(Go's ``MatchString``); results per attribute value are kept in a bounded LRU (``cache_max_size``, 128 when
0). As in the OTel Collector an empty span value never matches, a value of another type reads as "", and
``invert_match`` votes INVERTED_NOT_SAMPLED when one matches, else INVERTED_SAMPLED.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.config import field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement, scan_attribute
from pipelines.tail_sampling.policies.registry import Build

DEFAULT_CACHE_SIZE = 128


class RegexMatcher:
    """Any of several regular expressions, with an LRU of results by input string."""

    __slots__ = ("_cache", "_patterns", "size")

    def __init__(self, patterns: tuple[str, ...], size: int) -> None:
        self._patterns = [re.compile(p) for p in patterns]
        self.size = size if size > 0 else DEFAULT_CACHE_SIZE
        self._cache: OrderedDict[str, bool] = OrderedDict()

    def __call__(self, text: str) -> bool:
        cache = self._cache
        hit = cache.get(text)
        if hit is not None:
            cache.move_to_end(text)
            return hit
        result = any(p.search(text) is not None for p in self._patterns)
        cache[text] = result
        if len(cache) > self.size:
            cache.popitem(last=False)
        return result

    def __len__(self) -> int:
        return len(self._cache)


@dataclass(frozen=True)
class StringAttributeConfig:
    """A string attribute (span or resource) equal to one of ``values`` (or matching one of them as a
    regular expression, searched anywhere in the value, with ``enabled_regex_matching``)."""

    key: str = ""
    values: tuple[str, ...] = ()
    enabled_regex_matching: bool = False
    cache_max_size: int = field(0, ge=0)  # regex results kept (LRU); 0: 128
    invert_match: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"
        if self.enabled_regex_matching:
            for i, value in enumerate(self.values):
                try:
                    re.compile(value)
                except re.error as e:
                    yield f"values[{i}]", f"invalid regular expression {value!r}: {e}"


class StringAttribute:
    __slots__ = ("_exact", "_regex", "invert", "key", "name")

    config_class = StringAttributeConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: StringAttributeConfig, build: Build) -> StringAttribute:
        return cls(name, settings)

    def __init__(self, name: str, cfg: StringAttributeConfig) -> None:
        self.name = name
        self.key = cfg.key
        self.invert = cfg.invert_match
        self._regex = RegexMatcher(cfg.values, cfg.cache_max_size) if cfg.enabled_regex_matching else None
        self._exact = frozenset(v for v in cfg.values if v)

    def _matches(self, value: AnyValue, on_span: bool) -> bool:
        text = value.string_value
        if on_span and not text:
            return False
        if self._regex is not None:
            return self._regex(text)
        return text in self._exact

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return scan_attribute(trace, self.key, self._matches, self.invert)
