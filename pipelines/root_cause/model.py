"""What the ``root_cause`` stage learns about a failed trace, for the stages after it.

``root_cause`` stores a list of :class:`Failure` (one per signal span in error) in
``trace.notes[FAILURES]``; ``alert_routing`` turns each into an alert. Stages read them and never change
them. (They are not ``frozen``: a frozen dataclass sets each field through ``object.__setattr__``, which
makes building one about four times as costly.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FAILURES = "root_cause.failures"


@dataclass(slots=True)
class RootCause:
    """A span in error with no child in error."""

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


@dataclass(slots=True)
class Failure:
    """One signal span in error and where its errors stop."""

    signal: str  # the matching signal's name, "root" for the default (every root span)
    signal_service: str
    signal_span_name: str
    signal_span_id: bytes
    trace_id: bytes
    primary: RootCause  # ended first; ties: deeper first, then span id
    root_causes: tuple[RootCause, ...]  # in primary order (root_causes[0] is primary); at most max_root_causes
    root_cause_count: int = 0  # root causes found, also those beyond max_root_causes
