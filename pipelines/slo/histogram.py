"""Log-linear histograms with two significant digits per bin, in the manner of Circonus' circllhist.

A value ``v != 0`` falls in the bin ``(sign, exponent e, mantissa m)`` with ``m`` in 10..99 and
``|v|`` in ``[m/10 * 10**e, (m+1)/10 * 10**e)``: 90 bins per power of ten, each at most 10 % wide
relative to its lower edge (1 % at the top of a decade). Zero has its own bin. So:

* **Bounded relative error.** A percentile read as the midpoint of its bin is within 5 % of a value
  in that bin; the bins do not depend on the data, so two histograms merge by adding counts.
* **Exact counts at two-digit edges.** Every number with at most two significant digits (300, 1.5,
  0.25, 12000) is the lower edge of a bin, so ``count_below(300)`` (values < 300) is exact. Thresholds
  of latency objectives are usually such numbers; the ``slo`` stage counts good and bad events exactly
  alongside anyway, so the histogram is for percentiles.
* **Bounded size.** Exponents are clamped to -128..127, as in circllhist: at most 2 x 256 x 90 + 1 bins,
  and a latency distribution in milliseconds (1 µs .. 1000 s) needs at most 810.

Bins are kept as a ``dict`` from a packed integer key to a count; keys sort in value order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping

MIN_EXP, MAX_EXP = -128, 127
_POW10 = {e: 10.0 ** e for e in range(-140, 141)}


def _low(m: int, e: int) -> float:
    """The lower edge of bin (m, e): ``m/10 * 10**e``, computed as every caller computes it (dividing by an
    exact power of ten where one exists: 70 / 100 is 0.7, 70 * 0.01 is not), so that a value and the
    edges of its bin compare consistently."""
    return m * _POW10[e - 1] if e >= 1 else m / _POW10[1 - e]


def bin_key(value: float) -> int:
    """The packed key of the bin holding ``value``: 0 for zero (and NaN), ``+-((e + 129) * 100 + m)``
    otherwise, so that keys sort as the values do."""
    if value == 0 or value != value:  # zero, NaN
        return 0
    a = -value if value < 0 else value
    e = math.floor(math.log10(a))
    if e < MIN_EXP:
        return 0  # below the smallest bin: counted as zero
    if e > MAX_EXP:
        e, m = MAX_EXP, 99
    else:
        m = min(99, max(10, int(a / _POW10[e - 1] if e >= 1 else a * _POW10[1 - e])))
        # log10 and the scaling round: settle m (and e) so that low(m, e) <= a < low(m + 1, e) exactly
        while a < _low(m, e):
            if m > 10:
                m -= 1
            else:
                e, m = e - 1, 99
        while a >= _low(m + 1, e):
            if m < 99:
                m += 1
            else:
                e, m = e + 1, 10
        if e > MAX_EXP:
            e, m = MAX_EXP, 99
        elif e < MIN_EXP:
            return 0
    key = (e - MIN_EXP + 1) * 100 + m
    return -key if value < 0 else key


def bin_bounds(key: int) -> tuple[float, float]:
    """The ``[low, high)`` of a bin by key (for negative values ``low`` is the larger magnitude)."""
    if key == 0:
        return 0.0, 0.0
    k = -key if key < 0 else key
    e, m = k // 100 + MIN_EXP - 1, k % 100
    low, high = _low(m, e), _low(m + 1, e)
    return (-high, -low) if key < 0 else (low, high)


def bin_midpoint(key: int) -> float:
    low, high = bin_bounds(key)
    return (low + high) / 2


_INT10 = [10 ** i for i in range(25)]


def bin_key_ns(ns: int) -> int:
    """``bin_key(ns / 1e6)``: the bin of a duration in whole nanoseconds, as milliseconds, in integer
    arithmetic (exact, and about twice as fast as the float path)."""
    if ns <= 0:
        return 0
    digits = len(str(ns))
    if digits == 1:  # 1..9 ns: mantissa 10..90, exponent -6 in ms
        return (-6 - MIN_EXP + 1) * 100 + ns * 10
    return int((digits - 7 - MIN_EXP + 1) * 100 + ns // _INT10[digits - 2])


class Histogram:
    """A mergeable log-linear histogram (see the module docstring)."""

    __slots__ = ("bins", "count")

    def __init__(self, bins: Mapping[int, int] | None = None) -> None:
        self.bins: dict[int, int] = dict(bins) if bins else {}
        self.count = sum(self.bins.values())

    def add(self, value: float, n: int = 1) -> None:
        key = bin_key(value)
        bins = self.bins
        bins[key] = bins.get(key, 0) + n
        self.count += n

    def add_ns(self, ns: int) -> None:
        """Add a duration of ``ns`` nanoseconds as milliseconds."""
        key = bin_key_ns(ns)
        bins = self.bins
        bins[key] = bins.get(key, 0) + 1
        self.count += 1

    def add_values(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(v)

    def merge(self, other: Histogram) -> None:
        bins = self.bins
        for key, n in other.bins.items():
            bins[key] = bins.get(key, 0) + n
        self.count += other.count

    def count_below(self, threshold: float) -> int:
        """Values in bins entirely below ``threshold``: exact (values < threshold) when ``threshold`` is a
        bin edge (a number with at most two significant digits), else a lower bound."""
        limit = bin_key(threshold)  # bins with a smaller key lie wholly below threshold's bin
        return sum(n for key, n in self.bins.items() if key < limit)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) as the midpoint of the bin that holds it; None when empty."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen >= rank and seen > 0:
                return bin_midpoint(key)
        return bin_midpoint(max(self.bins))

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles with one sort."""
        wanted = sorted((q, i) for i, q in enumerate(qs))
        out: list[float | None] = [None] * len(wanted)
        if not self.count:
            return out
        keys = sorted(self.bins)
        k = 0
        seen = self.bins[keys[0]]
        for q, i in wanted:
            rank = q * self.count
            while seen < rank and k + 1 < len(keys):
                k += 1
                seen += self.bins[keys[k]]
            out[i] = bin_midpoint(keys[k])
        return out

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(sorted(self.bins.items()))

    def __len__(self) -> int:
        return len(self.bins)

    def to_list(self) -> list[list[int]]:
        return [[k, n] for k, n in self.bins.items()]

    @classmethod
    def from_list(cls, items: Iterable[Iterable[int]]) -> Histogram:
        h = cls()
        for key, n in items:
            h.bins[int(key)] = h.bins.get(int(key), 0) + int(n)
        h.count = sum(h.bins.values())
        return h
