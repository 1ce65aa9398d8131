"""``bytes_limiting``: a token bucket on trace bytes, as ``golang.org/x/time/rate`` runs it in contrib.

The bucket starts full at ``burst_capacity`` (default twice ``bytes_per_second``) and refills at
``bytes_per_second``; a trace takes its size in tokens if there are enough, else it is not sampled and
takes nothing. A trace larger than the bucket is never sampled. The size is the trace's stored span bytes
(contrib counts its whole protobuf encoding, resource included).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import field
from collector.model import Trace
from pipelines.tail_sampling.policies.base import Decision, Placement
from pipelines.tail_sampling.policies.registry import Build


class TokenBucket:
    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last: float | None = None

    def take(self, n: float, now: float) -> bool:
        if self.last is not None and now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        if self.last is None or now > self.last:
            self.last = now
        if n > self.capacity or n > self.tokens:
            return False
        self.tokens -= n
        return True


@dataclass(frozen=True)
class BytesLimitingConfig:
    """Token bucket on trace bytes: refilled at ``bytes_per_second``, holding at most ``burst_capacity``
    (0: twice ``bytes_per_second``)."""

    bytes_per_second: int = field(0, ge=0)
    burst_capacity: int = field(0, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.bytes_per_second <= 0:
            yield "bytes_per_second", "must be > 0"


class BytesLimiting:
    __slots__ = ("bucket", "name")

    config_class = BytesLimitingConfig
    placement = Placement.ANYWHERE

    @classmethod
    def from_config(cls, name: str, settings: BytesLimitingConfig, build: Build) -> BytesLimiting:
        return cls(name, settings)

    def __init__(self, name: str, cfg: BytesLimitingConfig) -> None:
        self.name = name
        burst = cfg.burst_capacity or 2 * cfg.bytes_per_second
        self.bucket = TokenBucket(float(cfg.bytes_per_second), float(burst))

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return Decision.SAMPLED if self.bucket.take(trace.byte_size, now) else Decision.NOT_SAMPLED
