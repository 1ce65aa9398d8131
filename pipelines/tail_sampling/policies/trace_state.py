"""``trace_state``: a span whose W3C ``tracestate`` has ``key`` set to one of ``values``.

A tracestate that does not parse (bad key or value, duplicate key, more than 32 members) never matches,
as in the OTel Collector; values with ``len(key) + len(value) >= 256`` are ignored, as there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement
from pipelines.tail_sampling.policies.registry import Build

MAX_MEMBERS = 32
_KEY = re.compile(r"[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


def trace_state_get(raw: str, key: str) -> str | None:
    """The value of ``key`` in a W3C tracestate string, "" when absent, None when it does not parse."""
    found = ""
    seen: set[str] = set()
    for member in raw.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        k, sep, v = member.partition("=")
        if not sep or not _KEY.fullmatch(k) or not _VALUE.fullmatch(v) or k in seen:
            return None
        seen.add(k)
        if len(seen) > MAX_MEMBERS:
            return None
        if k == key:
            found = v
    return found


@dataclass(frozen=True)
class TraceStateConfig:
    key: str = ""
    values: tuple[str, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.key:
            yield "key", "must not be empty"


class TraceState:
    __slots__ = ("key", "name", "values")

    config_class = TraceStateConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: TraceStateConfig, build: Build) -> TraceState:
        return cls(name, settings)

    def __init__(self, name: str, cfg: TraceStateConfig) -> None:
        self.name = name
        self.key = cfg.key
        self.values = frozenset(v for v in cfg.values if v and len(cfg.key) + len(v) < 256)

    def evaluate(self, trace: Trace, now: float) -> Decision:
        key, values = self.key, self.values
        for group in trace.groups():
            for span in group.scope_spans.spans:
                raw = span.trace_state
                if raw and trace_state_get(raw, key) in values:
                    return Decision.SAMPLED
        return Decision.NOT_SAMPLED
