"""What every policy shares: the :class:`Decision` values, the :class:`Policy` interface, what the registry
a policy class says of where it may stand (:class:`Placement`), attribute scans.

A policy is a small object with a ``name`` and ``evaluate(trace, now) -> Decision``. ``now`` is the
processor's clock (monotonic seconds): only the rate-based policies read it, so tests can drive time.
Policies read span fields straight from the decoded protobuf messages of ``trace.groups()``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Protocol

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.model import Trace


class Decision(enum.IntEnum):
    """A policy's vote, with the OTel Collector's values (the inverted ones come from ``invert_match``)."""

    UNSPECIFIED = 0
    PENDING = 1
    SAMPLED = 2
    NOT_SAMPLED = 3
    DROPPED = 4
    ERROR = 5
    INVERTED_SAMPLED = 6
    INVERTED_NOT_SAMPLED = 7


SAMPLED = Decision.SAMPLED
NOT_SAMPLED = Decision.NOT_SAMPLED
INVERTED_SAMPLED = Decision.INVERTED_SAMPLED
INVERTED_NOT_SAMPLED = Decision.INVERTED_NOT_SAMPLED


# trace.notes keys policies write for the processor:
# {policy name: (probability, consistent threshold or None)} of the policies that decide by a random draw
# (see :func:`record_probability`); a policy with no entry keeps what it samples with probability 1.
NOTE_PROBABILITY = "tail_sampling.probability"
# The name of the composite sub-policy that sampled the trace (contrib's ``tailsampling.composite_policy``).
NOTE_COMPOSITE = "tail_sampling.composite_policy"
_CERTAIN = (1.0, None)


def record_probability(trace: Trace, name: str, probability: float, consistent: int | None = None) -> None:
    """Policy ``name`` decided this trace by a draw that keeps it with ``probability``; ``consistent`` is its
    rejection threshold when the draw compared the trace's own randomness with it
    (:mod:`pipelines.tail_sampling.sample_rate`)."""
    notes = trace.notes
    rates = notes.get(NOTE_PROBABILITY)
    if rates is None:
        rates = notes[NOTE_PROBABILITY] = {}
    rates[name] = (probability, consistent)


def probability_of(trace: Trace, name: str) -> tuple[float, int | None]:
    """What :func:`record_probability` noted for policy ``name`` (else probability 1)."""
    rates = trace.note(NOTE_PROBABILITY)
    if rates is None:
        return _CERTAIN
    found: tuple[float, int | None] = rates.get(name, _CERTAIN)
    return found


class PolicyEvaluationError(Exception):
    """A policy could not decide for this trace (counted in ``sampling_policy_evaluation_error``)."""


class Policy(Protocol):
    """One sampling policy.

    A policy may also have ``evaluate_all(traces, now) -> list[Decision]``: the votes for many traces at
    once, the same as ``evaluate`` on each in order. The processor uses it for top-level policies (one
    call per decision round instead of one per trace); when it raises, the processor evaluates those
    traces one by one, so each error is counted against its trace."""

    name: str

    def evaluate(self, trace: Trace, now: float) -> Decision: ...


class Placement(enum.Flag):
    """Where a policy type may stand in config, as in the OTel Collector contrib processor."""

    TOP = enum.auto()  # the processor's ``policies`` list
    COMPOSITE = enum.auto()  # a composite policy's ``composite_sub_policy`` list
    SUB = enum.auto()  # ``and_sub_policy``, ``drop_sub_policy``, ``not_sub_policy``
    ANYWHERE = TOP | COMPOSITE | SUB


def wire_chunks(trace: Trace) -> list[bytes | bytearray]:
    """The trace's framed span bytes per origin, current even when a stage changed the decoded spans.

    Policies scan them with C-speed byte searches to rule traces out before touching the decoded messages
    (reading one protobuf field from Python costs about as much as scanning a kilobyte)."""
    return [chunk for _, chunk in trace.wire_chunks()]


def find(attributes: Sequence[KeyValue], key: str) -> AnyValue | None:
    """The value of the first attribute named ``key``, or None."""
    for kv in attributes:
        if kv.key == key:
            return kv.value
    return None


def scan_attribute(trace: Trace, key: str, matches: Callable[[AnyValue, bool], bool], invert: bool) -> Decision:
    """The OTel Collector's resource-or-span attribute rule, for the attribute ``key``.

    ``matches(value, on_span)`` tests one value. Without ``invert``: SAMPLED as soon as a resource or a span
    has a matching value, else NOT_SAMPLED. With ``invert``: INVERTED_NOT_SAMPLED as soon as one matches,
    else INVERTED_SAMPLED (so a trace without the attribute is sampled).
    """
    hit = INVERTED_NOT_SAMPLED if invert else SAMPLED
    for group in trace.groups():
        value = find(group.resource.attributes, key)
        if value is not None and matches(value, False):
            return hit
        for span in group.scope_spans.spans:
            for kv in span.attributes:
                if kv.key == key:
                    if matches(kv.value, True):
                        return hit
                    break
    return INVERTED_SAMPLED if invert else NOT_SAMPLED
