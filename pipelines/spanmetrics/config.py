"""Config of the ``spanmetrics`` processor (the options and defaults of the OTel Collector contrib
``spanmetrics`` connector, and the ``endpoint`` of the contrib ``prometheus`` exporter it serves on)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from collector.config import Duration, field

# The connector's default duration buckets.
DEFAULT_BUCKETS: tuple[Duration, ...] = tuple(Duration(s) for s in (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.050, 0.100, 0.200, 0.400, 0.800, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0))
DEFAULT_DIMENSIONS = ("service.name", "span.name", "span.kind", "status.code")


@dataclass(frozen=True)
class Explicit:
    buckets: tuple[Duration, ...] = DEFAULT_BUCKETS

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.buckets:
            yield "buckets", "needs at least one bucket"
        if any(b < 0 for b in self.buckets):
            yield "buckets", "must not be negative"
        if list(self.buckets) != sorted(set(self.buckets)):
            yield "buckets", "must be in increasing order without repeats"


@dataclass(frozen=True)
class Histogram:
    disable: bool = False
    unit: Literal["ms", "s"] = "ms"
    explicit: Explicit = field(default_factory=Explicit)


@dataclass(frozen=True)
class Dimension:
    """An attribute to label series with: the span's, else its resource's, else ``default`` (without a
    default, a span without the attribute gets no such label)."""

    name: str = field(min_len=1)
    default: str | None = None


@dataclass(frozen=True)
class Exemplars:
    """Exemplars link a histogram bucket to a span of a kept trace. Behind a trace buffer (tail sampling)
    an exemplar waits for its trace's decision: at most ``max_pending_traces`` trace ids wait, with at most
    ``max_per_trace`` exemplars each, for at most ``pending_timeout``."""

    enabled: bool = False
    max_pending_traces: int = field(10000, ge=1)
    max_per_trace: int = field(8, ge=1)
    pending_timeout: Duration = field(Duration(120.0), gt=0)


@dataclass(frozen=True)
class Config:
    """``spanmetrics`` settings.

    * ``endpoint``: where Prometheus scrapes the series (``/metrics``; shared with other processors that
      name the same endpoint).
    * ``dimensions``: extra labels from span or resource attributes; ``exclude_dimensions``: default labels
      to leave out (``service.name``, ``span.name``, ``span.kind``, ``status.code``).
    * ``aggregation_cardinality_limit``: series at most (0: ``dimensions_cache_size`` bounds them); spans of
      further label sets go to one series labelled ``otel_metric_overflow="true"`` and are counted.
    * ``dimensions_cache_size``: label sets remembered for the lookup of series.
    * ``metrics_expiration``: a series not updated for this long is removed (0: never).
    * ``namespace``: prefix of the metric names (dots become underscores).
    """

    endpoint: str = "localhost:8889"
    histogram: Histogram = field(default_factory=Histogram)
    dimensions: tuple[Dimension, ...] = ()
    exclude_dimensions: tuple[str, ...] = ()
    dimensions_cache_size: int = field(1000, ge=1)
    aggregation_cardinality_limit: int = field(0, ge=0)
    metrics_expiration: Duration = field(Duration(0.0), ge=0)
    namespace: str = "traces.span.metrics"
    exemplars: Exemplars = field(default_factory=Exemplars)

    def validate(self) -> Iterator[tuple[str, str]]:
        for i, name in enumerate(self.exclude_dimensions):
            if name not in DEFAULT_DIMENSIONS:
                yield f"exclude_dimensions[{i}]", (f"{name!r} is not a default dimension "
                                                   f"({', '.join(DEFAULT_DIMENSIONS)})")
        names = [d.name for d in self.dimensions]
        for i, name in enumerate(names):
            if name in names[:i]:
                yield f"dimensions[{i}].name", f"{name!r} is listed twice"
            if name in DEFAULT_DIMENSIONS:
                yield f"dimensions[{i}].name", f"{name!r} is a default dimension"
        if not self.namespace.replace(".", "_").replace("_", "a").isalnum() and self.namespace:
            yield "namespace", "letters, digits, dots and underscores only"

    @property
    def limit(self) -> int:
        return self.aggregation_cardinality_limit or self.dimensions_cache_size
