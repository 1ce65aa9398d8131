"""The metrics the status page reads: one pass over the service's registry per sample, summed by the label
subsets the page asks for, and a short ring of samples for rates.

A sample costs one ``collect()`` of the registry (what a Prometheus scrape costs), taken at most once a
second by a page view and every ``SAMPLE_INTERVAL`` seconds by the server's sampler task; the span path
never sees it. Rates are the change between the newest sample and the newest one at least
``MIN_RATE_SPAN`` seconds older.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.telemetry import Telemetry

SAMPLE_INTERVAL = 5.0
MIN_SAMPLE_AGE = 1.0  # a page view samples again only when the newest sample is older than this
MIN_RATE_SPAN = 2.0
RING = 16  # samples kept (at SAMPLE_INTERVAL: over a minute)

Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Sample:
    """Every series of the registry at ``at`` (monotonic), summed per metric name and per each subset of at
    most two of its labels (``sum("x", receiver="otlp")`` adds every ``x`` series with that label)."""

    at: float
    sums: dict[Key, float] = field(default_factory=dict)

    def sum(self, name: str, **labels: str) -> float:
        return self.sums.get((name, tuple(sorted(labels.items()))), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, tuple(sorted(labels.items()))) in self.sums


def take(telemetry: Telemetry, clock: Callable[[], float] = time.monotonic) -> Sample:
    sample = Sample(clock())
    sums = sample.sums
    for family in telemetry.registry.collect():
        for s in family.samples:
            if s.name.endswith(("_created", "_bucket")):
                continue
            items = sorted(s.labels.items())
            for size in range(min(2, len(items)) + 1):
                for subset in itertools.combinations(items, size):
                    key = (s.name, subset)
                    sums[key] = sums.get(key, 0.0) + s.value
    return sample


class Samples:
    """The ring of samples, newest last."""

    def __init__(self, telemetry: Telemetry, clock: Callable[[], float] = time.monotonic) -> None:
        self._telemetry = telemetry
        self._clock = clock
        self._ring: collections.deque[Sample] = collections.deque(maxlen=RING)

    def sample(self) -> Sample:
        s = take(self._telemetry, self._clock)
        self._ring.append(s)
        return s

    def fresh(self) -> Sample:
        """The newest sample, taken now if there is none younger than ``MIN_SAMPLE_AGE``."""
        if not self._ring or self._clock() - self._ring[-1].at > MIN_SAMPLE_AGE:
            return self.sample()
        return self._ring[-1]

    def base(self) -> Sample | None:
        """The sample rates are measured from: the newest at least ``MIN_RATE_SPAN`` before the newest."""
        if not self._ring:
            return None
        newest = self._ring[-1].at
        for s in reversed(self._ring):
            if newest - s.at >= MIN_RATE_SPAN:
                return s
        return None

    def rate(self, name: str, **labels: str) -> float | None:
        """Per second between :meth:`base` and the newest sample; None until two samples are far enough apart."""
        base = self.base()
        if base is None:
            return None
        now = self._ring[-1]
        return max(0.0, now.sum(name, **labels) - base.sum(name, **labels)) / (now.at - base.at)

    @property
    def rate_window(self) -> float | None:
        base = self.base()
        return None if base is None else self._ring[-1].at - base.at
