"""``status_code``: a span whose status code is one of ``status_codes`` (OK, ERROR, UNSET).

Fast path: a set code is encoded as the ``Status.code`` field (tag ``0x18``) followed by the varint code,
so when the codes sought exclude UNSET (which is not encoded) and none of ``18 01`` (OK) / ``18 02``
(ERROR) occurs anywhere in the trace's bytes, no span can match and the spans are not decoded. For ERROR
the wire walk already answered that on the way in (``Trace.maybe_error``), and ``Trace.has_error_status``
decodes only spans with those bytes (or none, when a stage before, root_cause, found out). Otherwise every
span's status is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal

from opentelemetry.proto.trace.v1.trace_pb2 import Status

from collector.model import Trace
from collector.wire import ERROR_CODE, OK_CODE
from pipelines.tail_sampling.policies.base import Decision, Placement, wire_chunks
from pipelines.tail_sampling.policies.registry import Build

CODES = {"UNSET": Status.STATUS_CODE_UNSET, "OK": Status.STATUS_CODE_OK, "ERROR": Status.STATUS_CODE_ERROR}
_CODE = attrgetter("status.code")
WIRE = {"OK": OK_CODE, "ERROR": ERROR_CODE}


@dataclass(frozen=True)
class StatusCodeConfig:
    status_codes: tuple[Literal["OK", "ERROR", "UNSET"], ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.status_codes:
            yield "status_codes", "must list at least one of OK, ERROR, UNSET"


class StatusCode:
    __slots__ = ("codes", "error_only", "name", "patterns")

    config_class = StatusCodeConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: StatusCodeConfig, build: Build) -> StatusCode:
        return cls(name, settings)

    def __init__(self, name: str, cfg: StatusCodeConfig) -> None:
        self.name = name
        self.codes = frozenset(CODES[c] for c in cfg.status_codes)
        self.patterns = None if "UNSET" in cfg.status_codes else tuple({WIRE[c] for c in cfg.status_codes})
        self.error_only = set(cfg.status_codes) == {"ERROR"}

    def evaluate_all(self, traces: list[Trace], now: float) -> list[Decision]:
        """``evaluate`` of each: for ERROR alone, traces the wire walk cleared cost one attribute read."""
        if not self.error_only:
            return [self.evaluate(t, now) for t in traces]
        sampled, not_sampled = Decision.SAMPLED, Decision.NOT_SAMPLED
        return [(sampled if t.has_error_status() else not_sampled) if t.maybe_error else not_sampled
                for t in traces]

    def evaluate(self, trace: Trace, now: float) -> Decision:
        if self.error_only:
            if not trace.maybe_error:  # (has_error_status says so too: this saves the call)
                return Decision.NOT_SAMPLED
            return Decision.SAMPLED if trace.has_error_status() else Decision.NOT_SAMPLED
        patterns = self.patterns
        if patterns is not None and not _contains(wire_chunks(trace), patterns):
            return Decision.NOT_SAMPLED
        codes = self.codes
        for group in trace.groups():
            if not codes.isdisjoint(map(_CODE, group.scope_spans.spans)):
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED


def _contains(chunks: list[bytes | bytearray], patterns: tuple[bytes, ...]) -> bool:
    for chunk in chunks:
        for pattern in patterns:
            if pattern in chunk:
                return True
    return False
