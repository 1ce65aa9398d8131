"""Config of the ``memory_limiter`` processor: the OTel Collector's options, defaults and checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import Duration, field

MIB = 1024 * 1024
# What an idle collector process uses (RSS) with the compiled wire walk loaded and malloc on huge pages,
# measured on x86_64 with Python 3.11: 210 - 250 MiB. The limit must leave data room above it.
IDLE_FOOTPRINT_MIB = 250
DEFAULT_MIN_GC_SOFT = Duration(10.0)
NO_INTERVAL = Duration(0.0)


@dataclass(frozen=True)
class Config:
    """``memory_limiter`` settings.

    The limit is given either in MiB (``limit_mib``, ``spike_limit_mib``) or as a percentage of the
    total memory available (``limit_percentage``, ``spike_limit_percentage``), not both. The spike limit
    defaults to 20 % of the limit (a spike value of 0 means "default", as in the OTel Collector). Data is
    refused above the soft limit (limit - spike); above the limit a garbage collection is forced.
    """

    check_interval: Duration = field(gt=0)
    limit_mib: int = field(0, ge=0)
    spike_limit_mib: int = field(0, ge=0)
    limit_percentage: int = field(0, ge=0, le=100)
    spike_limit_percentage: int = field(0, ge=0, le=100)
    min_gc_interval_when_soft_limited: Duration = field(DEFAULT_MIN_GC_SOFT, ge=0)
    min_gc_interval_when_hard_limited: Duration = field(NO_INTERVAL, ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        by_mib = self.limit_mib > 0 or self.spike_limit_mib > 0
        by_pct = self.limit_percentage > 0 or self.spike_limit_percentage > 0
        if by_mib and by_pct:
            yield "", (
                "set either limit_mib/spike_limit_mib or limit_percentage/spike_limit_percentage, not both"
            )
        elif self.limit_mib == 0 and self.limit_percentage == 0:
            yield "", "'limit_mib' or 'limit_percentage' must be greater than zero"
        elif self.limit_mib > 0 and self.spike_limit_mib >= self.limit_mib:
            yield "spike_limit_mib", "must be smaller than 'limit_mib'"
        elif self.limit_percentage > 0 and self.spike_limit_percentage >= self.limit_percentage:
            yield "spike_limit_percentage", "must be smaller than 'limit_percentage'"
        if self.min_gc_interval_when_soft_limited < self.min_gc_interval_when_hard_limited:
            yield (
                "min_gc_interval_when_soft_limited",
                "should be larger than 'min_gc_interval_when_hard_limited'",
            )

    def warnings(self) -> Iterator[tuple[str, str]]:
        """A valid limit that a typical idle process nearly fills (``tracetriage validate`` and start-up say
        so; at run time the limiter measures the process itself, see the processor's docstring)."""
        if self.limit_mib <= 0:
            return
        _, spike = self.limits()
        room = self.limit_mib - 2 * spike // MIB - IDLE_FOOTPRINT_MIB
        if room < 0:
            yield "limit_mib", (
                f"{self.limit_mib} MiB leaves data less than the spike limit ({spike // MIB} MiB) below the soft "
                f"limit above an idle collector (about {IDLE_FOOTPRINT_MIB} MiB): the limiter may have to move "
                f"its limits up at start-up; size limit_mib at least {IDLE_FOOTPRINT_MIB + 2 * spike // MIB} MiB "
                "plus room for the data held (docs/components/processors/memory_limiter.md, Sizing)"
            )

    def limits(self, total_memory: int | None = None) -> tuple[int, int]:
        """``(hard limit, spike)`` in bytes; ``total_memory`` (bytes) is needed for percentages."""
        if self.limit_mib > 0:
            limit, spike = self.limit_mib * MIB, self.spike_limit_mib * MIB
        else:
            if not total_memory:
                raise ValueError("limit_percentage needs the total memory size")
            limit = total_memory * self.limit_percentage // 100
            spike = total_memory * self.spike_limit_percentage // 100
        if spike == 0:
            spike = limit // 5
        return limit, spike
