"""What the ``root_cause`` stage learns about a failed or slow trace, for the stages after it.

``root_cause`` stores a list of :class:`Failure` in ``trace.notes[FAILURES]``: one per signal span in error
(``kind`` "error", from the root-cause walk) and one per signal span slower than its latency threshold and
not in error (``kind`` "latency", from the latency walk, see :mod:`pipelines.root_cause.critical_path`).
``alert_routing`` turns each into an alert. Stages read them and never change them. (They are not
``frozen``: a frozen dataclass sets each field through ``object.__setattr__``, which makes building one
about four times as costly.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

FAILURES = "root_cause.failures"

FailureKind = Literal["error", "latency"]
ERROR: FailureKind = "error"
LATENCY: FailureKind = "latency"


@dataclass(slots=True)
class RootCause:
    """A span in error with no child in error; for a latency failure, the span on the critical path with
    the largest exclusive time."""

    service: str  # the blamed service: the callee for a CLIENT leaf with no server child, else service.name
    span_name: str
    span_id: bytes
    depth: int  # 0 = the signal span itself
    path: tuple[str, ...]  # "service:span name" from the signal span down to this span
    end_time_unix_nano: int
    span_service: str = ""  # service.name of the span's own resource (differs from `service` when blaming a callee)
    blamed_callee: bool = False
    error_type: str = ""  # exception.type (event or attribute), "" if none
    error_message: str = ""  # exception.message or status message, "" if none
    resource_attributes: Mapping[str, str] = field(default_factory=dict)  # string attributes of the span's resource
    self_time_ms: float = 0.0  # latency: the span's exclusive time on the signal's critical path


class PathStep(NamedTuple):
    """One span on a signal's critical path and its exclusive (self) time there."""

    span: str  # "service:span name" (the span's own service.name)
    self_time_ms: float


@dataclass(slots=True)
class Failure:
    """One signal span in error (or too slow) and where its errors stop (or its time goes)."""

    signal: str  # the matching signal's name, "root" for the default (every root span)
    signal_service: str
    signal_span_name: str
    signal_span_id: bytes
    trace_id: bytes
    primary: RootCause  # error: ended first, ties deeper first, then span id; latency: the blamed span
    root_causes: tuple[RootCause, ...]  # in primary order (root_causes[0] is primary); at most max_root_causes
    root_cause_count: int = 0  # root causes found, also those beyond max_root_causes
    kind: FailureKind = ERROR
    duration_ms: float = 0.0  # latency: the signal span's duration
    threshold_ms: float = 0.0  # latency: the threshold it exceeded (0: explained on request, no threshold)
    # latency: the spans of the critical path in time order (pre-order: a span, then its part of the path),
    # each with its exclusive time; at most max_path_length of them (those with the most self time).
    critical_path: tuple[PathStep, ...] = ()
    critical_path_length: int = 0  # spans on the critical path, also those left out of ``critical_path``
