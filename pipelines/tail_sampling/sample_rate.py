"""Recorded sample rates: OpenTelemetry's consistent probability sampling threshold (``th``) in the ``ot``
entry of a span's W3C ``tracestate``, and the arithmetic around it.

* A sampling probability ``p`` is carried as a 56-bit rejection threshold ``T = (1 - p) * 2**56``, written as
  up to 14 hex digits with the trailing zeros removed (``th:0`` is 100 %, ``th:8`` 50 %, ``th:c`` 25 %).
  :func:`probability_to_threshold` rounds to ``precision`` significant hex digits, adding digits for each
  leading ``0`` or ``f`` (as the OpenTelemetry contrib ``pkg/sampling`` does), so small probabilities keep
  their relative precision.
* A policy that keeps traces by a random draw of its own (``ema_throughput``, independent of the randomness
  head sampling used) multiplies: the span's probability becomes ``p_head * p_tail``.
* A policy that decides consistently, from the same randomness (the ``rv`` sub-key, else the trace id's last
  7 bytes) compared with its own threshold (``probabilistic`` with ``use_tracestate``), keeps the larger of
  the two thresholds, as the specification's consistent samplers do.
* Other vendors' tracestate entries are kept, in order; the changed ``ot`` entry moves to the front, as W3C
  Trace Context asks of a participant that changes its own entry.
"""

from __future__ import annotations

import math

MAX_ADJUSTED_COUNT = 1 << 56  # 2**56: thresholds and randomness values are 56-bit
HEX_DIGITS = 14
MIN_PROBABILITY = 1.0 / MAX_ADJUSTED_COUNT
DEFAULT_PRECISION = 4
MAX_TRACESTATE_MEMBERS = 32  # W3C Trace Context


class TraceStateError(ValueError):
    """A tracestate value this module will not rewrite (it is left as it was)."""


def probability_to_threshold(p: float, precision: int = DEFAULT_PRECISION) -> int:
    """The rejection threshold of probability ``p`` (clamped to [2**-56, 1]), rounded to ``precision``
    significant hex digits (0: all 14)."""
    p = min(1.0, max(MIN_PROBABILITY, p))
    if p == 1.0:
        return 0
    if precision <= 0 or precision > HEX_DIGITS:
        precision = HEX_DIGITS
    # One more digit for every leading hex 0 of p or of 1 - p (Go's integer division truncates; so does int()).
    exp_p = math.frexp(p)[1]
    exp_r = math.frexp(1.0 - p)[1]
    precision = min(HEX_DIGITS, max(precision + int(exp_p / -4), precision + int(exp_r / -4)))
    threshold = MAX_ADJUSTED_COUNT - round(p * MAX_ADJUSTED_COUNT)
    shift = 4 * (HEX_DIGITS - precision)
    if shift:
        threshold = ((threshold + (1 << (shift - 1))) >> shift) << shift
    return min(threshold, MAX_ADJUSTED_COUNT - 1)


def threshold_to_probability(threshold: int) -> float:
    return (MAX_ADJUSTED_COUNT - threshold) / MAX_ADJUSTED_COUNT


def encode_threshold(threshold: int) -> str:
    """``th`` value: 14 hex digits without trailing zeros ("0" for 100 %)."""
    return f"{threshold:014x}".rstrip("0") or "0"


def decode_threshold(text: str) -> int:
    """A ``th`` value's threshold. Raises TraceStateError when it is not 1 to 14 lower-case hex digits."""
    if not 1 <= len(text) <= HEX_DIGITS or any(c not in "0123456789abcdef" for c in text):
        raise TraceStateError(f"th value {text!r} is not 1 to 14 lower-case hex digits")
    return int(text.ljust(HEX_DIGITS, "0"), 16)


def _members(tracestate: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in tracestate.split(","):
        item = item.strip(" \t")
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TraceStateError(f"tracestate member {item!r} is not key=value")
        out.append((key, value))
    return out


def ot_fields(tracestate: str) -> dict[str, str]:
    """The sub-keys of the ``ot`` entry (``{"th": "8", "rv": ...}``); empty when there is none."""
    for key, value in _members(tracestate):
        if key == "ot":
            fields: dict[str, str] = {}
            for part in value.split(";"):
                k, sep, v = part.partition(":")
                if sep and k:
                    fields[k] = v
            return fields
    return {}


def head_threshold(tracestate: str) -> int | None:
    """The threshold head sampling wrote (None: no valid ``th``)."""
    try:
        th = ot_fields(tracestate).get("th") if tracestate else None
        return None if th is None else decode_threshold(th)
    except TraceStateError:
        return None


def randomness(tracestate: str, trace_id: bytes) -> int:
    """The 56-bit randomness value: ``rv`` when valid, else the trace id's last 7 bytes."""
    if tracestate:
        try:
            rv = ot_fields(tracestate).get("rv")
        except TraceStateError:
            rv = None
        if rv is not None and len(rv) == HEX_DIGITS:
            try:
                return int(rv, 16)
            except ValueError:
                pass
    return int.from_bytes(trace_id[-7:], "big")


def combined_threshold(tracestate: str, probability: float, consistent: int | None,
                       precision: int = DEFAULT_PRECISION) -> int:
    """The threshold a span kept by tail sampling carries: with ``consistent`` (a threshold compared with
    the trace's own randomness), the larger of it and the head's; else the threshold of ``probability``
    times the head's probability."""
    head = head_threshold(tracestate)
    if consistent is not None:
        return consistent if head is None else max(head, consistent)
    p_head = 1.0 if head is None else threshold_to_probability(head)
    return probability_to_threshold(p_head * probability, precision)


def with_threshold(tracestate: str, threshold: int) -> str:
    """``tracestate`` with ``th`` in its ``ot`` entry set to ``threshold`` and that entry first; the other
    sub-keys and other vendors' entries are kept. Raises TraceStateError for a value that does not parse."""
    members = _members(tracestate) if tracestate else []
    th = encode_threshold(threshold)
    ot = next((v for k, v in members if k == "ot"), None)
    parts = [] if not ot else [p for p in ot.split(";") if p and not p.startswith("th:")]
    value = ";".join([f"th:{th}", *parts])
    others = [f"{k}={v}" for k, v in members if k != "ot"][:MAX_TRACESTATE_MEMBERS - 1]
    return ",".join([f"ot={value}", *others])


__all__ = [
    "DEFAULT_PRECISION", "MAX_ADJUSTED_COUNT", "TraceStateError", "combined_threshold", "decode_threshold",
    "encode_threshold", "head_threshold", "ot_fields", "probability_to_threshold", "randomness",
    "threshold_to_probability", "with_threshold",
]
