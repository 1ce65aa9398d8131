"""``probabilistic``: ``sampling_percentage`` of traces, decided by the trace id alone.

The OTel Collector's computation, so both decide alike for the same trace id and salt: the 64-bit FNV-1a
hash of ``hash_salt`` (default ``"default-hash-seed"``) followed by the 16 trace id bytes is compared with
``threshold = trunc(round64((2**64 - 1) * percentage / 100))``, where ``round64`` rounds to 64 significant
bits (Go's ``big.Float`` at the boundary's precision, nearest even); sampled when ``hash <= threshold``.

With ``use_tracestate`` (contrib's ``processor.tailsamplingprocessor.usetracestate`` gate, or the
processor's ``use_tracestate``), a trace whose spans carry an OpenTelemetry ``ot`` tracestate entry (``rv``
or ``th``) is decided consistently instead: sampled when its 56-bit randomness (``rv``, else the trace id's
last 7 bytes) is at least the rejection threshold of ``sampling_percentage``; other traces by the hash. Either
way the policy records the probability it sampled with, so the processor writes ``th`` on the kept spans.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from collector.config import field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement, record_probability
from pipelines.tail_sampling.policies.registry import Build
from pipelines.tail_sampling.sample_rate import HEX_DIGITS, ot_fields, probability_to_threshold, randomness

DEFAULT_HASH_SALT = "default-hash-seed"
MAX_UINT64 = 2**64 - 1
FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3


def fnv1a_64(data: bytes, state: int = FNV64_OFFSET) -> int:
    """64-bit FNV-1a of ``data``, continuing from ``state``.

    The low 64 bits of xor-with-a-byte and of a product depend only on the low 64 bits of the operands, so
    one mask at the end gives the same result as one per byte (and is faster in Python)."""
    h = state
    for b in data:
        h = (h ^ b) * FNV64_PRIME
    return h & MAX_UINT64


def threshold(ratio: float) -> int:
    """``ratio`` of the uint64 range, as contrib's ``calculateThreshold`` computes it."""
    if ratio <= 0:
        return 0
    exact = MAX_UINT64 * Fraction(ratio)
    num, den = exact.numerator, exact.denominator
    e = num.bit_length() - den.bit_length()  # 2**e <= exact < 2**(e + 1) after the adjustment
    if exact < Fraction(2) ** e:
        e -= 1
    unit = Fraction(2) ** (e - 63)  # 64 significant bits
    rounded = round(exact / unit) * unit  # round() on a Fraction rounds half to even
    return min(int(rounded), MAX_UINT64)


def fnv1a_64_many(ids: list[bytes], state: int) -> list[int]:
    """:func:`fnv1a_64` of many 16-byte trace ids at once (uint64 products wrap modulo 2**64, as the
    masked Python ones)."""
    rows = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(len(ids), 16).astype(np.uint64)
    h = np.full(len(ids), state, dtype=np.uint64)
    prime = np.uint64(FNV64_PRIME)
    for i in range(16):
        h ^= rows[:, i]
        h *= prime
    out: list[int] = h.tolist()
    return out


@dataclass(frozen=True)
class ProbabilisticConfig:
    """``sampling_percentage`` of traces, decided by a hash of ``hash_salt`` and the trace id (>= 100: all)."""

    hash_salt: str = ""
    sampling_percentage: float = field(0.0, ge=0)


class Probabilistic:
    __slots__ = ("name", "probability", "rejection", "salt_state", "threshold", "use_tracestate")

    config_class = ProbabilisticConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: ProbabilisticConfig, build: Build) -> Probabilistic:
        return cls(name, settings)

    def __init__(self, name: str, cfg: ProbabilisticConfig) -> None:
        self.name = name
        self.salt_state = fnv1a_64((cfg.hash_salt or DEFAULT_HASH_SALT).encode())
        self.threshold = threshold(cfg.sampling_percentage / 100)
        self.probability = min(1.0, cfg.sampling_percentage / 100)
        # The consistent rejection threshold (all 14 digits), for use_tracestate.
        self.rejection = probability_to_threshold(self.probability, HEX_DIGITS) if self.probability > 0 \
            else 1 << 56
        self.use_tracestate = False  # set by the processor (its use_tracestate)

    def hash(self, trace_id: bytes) -> int:
        return fnv1a_64(trace_id, self.salt_state)

    def evaluate_all(self, traces: list[Trace], now: float) -> list[Decision]:
        """``evaluate`` of each, the ids hashed all at once."""
        if self.use_tracestate:
            return [self.evaluate(t, now) for t in traces]
        ids = [t.trace_id for t in traces]
        if not ids or set(map(len, ids)) != {16}:
            return [self.evaluate(t, now) for t in traces]
        limit = self.threshold
        sampled, not_sampled = Decision.SAMPLED, Decision.NOT_SAMPLED
        return [sampled if h <= limit else not_sampled for h in fnv1a_64_many(ids, self.salt_state)]

    def evaluate(self, trace: Trace, now: float) -> Decision:
        if self.use_tracestate:
            return self._evaluate_tracestate(trace)
        sampled = fnv1a_64(trace.trace_id, self.salt_state) <= self.threshold
        return Decision.SAMPLED if sampled else Decision.NOT_SAMPLED

    def _evaluate_tracestate(self, trace: Trace) -> Decision:
        tracestate = next((s.trace_state for _, s in trace.iter_spans() if s.trace_state), "")
        try:
            fields = ot_fields(tracestate) if tracestate else {}
        except ValueError:
            fields = {}
        if "rv" in fields or "th" in fields:
            sampled = randomness(tracestate, trace.trace_id) >= self.rejection
            record_probability(trace, self.name, self.probability, self.rejection)
        else:
            sampled = fnv1a_64(trace.trace_id, self.salt_state) <= self.threshold
            record_probability(trace, self.name, self.probability)
        return Decision.SAMPLED if sampled else Decision.NOT_SAMPLED
