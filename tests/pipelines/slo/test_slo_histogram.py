"""The log-linear histogram: bins of two significant digits, bounded relative error, exact counts below
two-digit thresholds, merging, percentiles."""

from __future__ import annotations

import random

import pytest

from pipelines.slo.histogram import Histogram, bin_bounds, bin_key


@pytest.mark.parametrize("value", [0.7, 0.3, 300, 1.5, 0.25, 12000, 1e-3, 99, 100, 1, 0.1, 5e-7, 0.07, 4.2e9])
def test_two_digit_numbers_are_lower_bin_edges(value: float) -> None:
    low, high = bin_bounds(bin_key(value))
    assert low == pytest.approx(value, rel=1e-12) and high > value
    lower = bin_bounds(bin_key(value * (1 - 1e-9)))
    assert lower[1] == pytest.approx(value, rel=1e-12)  # just below: the previous bin, ending at the value


def test_every_value_falls_in_its_bin_and_bins_are_at_most_ten_percent_wide() -> None:
    rnd = random.Random(3)
    for _ in range(50_000):
        v = rnd.lognormvariate(0, 6) * rnd.choice((1, -1))
        low, high = bin_bounds(bin_key(v))
        assert low <= v < high or (v < 0 and low < v <= high)
        assert (high - low) / min(abs(low), abs(high)) <= 0.1 + 1e-9


def test_keys_sort_as_values_and_zero_has_its_own_bin() -> None:
    values = sorted([-5.5, -0.02, 0.0, 0.013, 0.9, 1.0, 47, 1e6])
    keys = [bin_key(v) for v in values]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert bin_key(0.0) == 0 and bin_bounds(0) == (0.0, 0.0)


def test_count_below_a_two_digit_threshold_is_exact() -> None:
    rnd = random.Random(5)
    values = [rnd.lognormvariate(5, 1) for _ in range(20_000)] + [300.0] * 7 + [299.99999] * 3
    h = Histogram()
    h.add_values(values)
    assert h.count == len(values)
    for threshold in (300, 250, 1000, 12, 1.5):
        assert h.count_below(threshold) == sum(v < threshold for v in values)


def test_merge_adds_counts_and_quantiles_have_bounded_error() -> None:
    rnd = random.Random(9)
    a_values = [rnd.lognormvariate(3, 0.8) for _ in range(10_000)]
    b_values = [rnd.lognormvariate(4, 0.5) for _ in range(10_000)]
    a, b, whole = Histogram(), Histogram(), Histogram()
    a.add_values(a_values)
    b.add_values(b_values)
    whole.add_values(a_values + b_values)
    a.merge(b)
    assert a.bins == whole.bins and a.count == whole.count == 20_000
    exact = sorted(a_values + b_values)
    for q in (0.5, 0.9, 0.99, 0.999):
        got = a.quantile(q)
        assert got is not None
        want = exact[int(q * len(exact)) - 1]
        assert abs(got - want) / want <= 0.055, (q, got, want)
    assert a.quantiles([0.99, 0.5]) == [a.quantile(0.99), a.quantile(0.5)]
    assert Histogram().quantile(0.5) is None
    assert Histogram.from_list(a.to_list()).bins == a.bins


def test_integer_nanoseconds_bin_as_their_milliseconds() -> None:
    from pipelines.slo.histogram import bin_key_ns

    rnd = random.Random(11)
    values = [int(rnd.lognormvariate(15, 6)) for _ in range(50_000)] + [1, 9, 10, 99, 100, 300_000_000, 10**18]
    for ns in values:
        assert bin_key_ns(ns) == bin_key(ns / 1e6), ns
    assert bin_key_ns(0) == bin_key_ns(-5) == 0
    h = Histogram()
    h.add_ns(300_000_000)
    assert h.count_below(300) == 0 and h.count_below(310) == 1
