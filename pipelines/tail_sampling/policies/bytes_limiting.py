"""``bytes_limiting``: a token bucket on trace bytes, as ``golang.org/x/time/rate`` runs it in contrib.

The bucket starts full at ``burst_capacity`` (default twice ``bytes_per_second``) and refills at
``bytes_per_second``; a trace takes its size in tokens if there are enough, else it is not sampled and
takes nothing. A trace larger than the bucket is never sampled. The size is the trace's stored span bytes
(contrib counts its whole protobuf encoding, resource included).
"""

from __future__ import annotations

from collector.model import Trace
from pipelines.tail_sampling.config import BytesLimitingConfig
from pipelines.tail_sampling.policies.base import Decision


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


class BytesLimiting:
    __slots__ = ("bucket", "name")

    def __init__(self, name: str, cfg: BytesLimitingConfig) -> None:
        self.name = name
        burst = cfg.burst_capacity or 2 * cfg.bytes_per_second
        self.bucket = TokenBucket(float(cfg.bytes_per_second), float(burst))

    def evaluate(self, trace: Trace, now: float) -> Decision:
        return Decision.SAMPLED if self.bucket.take(trace.byte_size, now) else Decision.NOT_SAMPLED
