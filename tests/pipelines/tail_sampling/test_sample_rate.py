"""Threshold encoding of OpenTelemetry's consistent probability sampling (``th`` in the ``ot`` tracestate
entry), combination with a head-sampled ``th``, and other vendors' entries."""

from __future__ import annotations

import pytest

from pipelines.tail_sampling.sample_rate import (
    TraceStateError,
    combined_threshold,
    decode_threshold,
    encode_threshold,
    ot_fields,
    probability_to_threshold,
    randomness,
    threshold_to_probability,
    with_threshold,
)


def th(p: float, precision: int = 4) -> str:
    return encode_threshold(probability_to_threshold(p, precision))


@pytest.mark.parametrize(("p", "expected"), [
    # The specification's threshold T = (1 - p) * 2**56 as 14 hex digits, trailing zeros removed.
    (1.0, "0"),  # th:0 is 100 %
    (0.5, "8"),  # 0x80000000000000
    (0.25, "c"),  # 0xc0000000000000
    (1 / 3, "aaab"),  # 2/3 = 0x0.aaaa..., rounded to 4 digits
    (0.1, "e666"),  # 0.9 = 0x0.e6666...
    (0.01, "fd70a"),  # 0.99 = 0x0.fd70a3d7...: p's leading hex 0 adds a digit
    (2 ** -10, "ffc"),  # 1 - 2**-10 = 0x0.ffc exactly
])
def test_threshold_encoding_matches_the_specification(p: float, expected: str) -> None:
    assert th(p) == expected
    assert threshold_to_probability(decode_threshold(expected)) == pytest.approx(p, rel=1e-3)


def test_full_precision_and_decoding() -> None:
    # 14 digits: the threshold of the float nearest 1/3, within one unit of the 56-bit grid of 2/3 * 2**56
    assert th(1 / 3, 14)[:13] == "aaaaaaaaaaaaa"
    assert abs(3 * decode_threshold(th(1 / 3, 14)) - (2 << 56)) <= 6
    assert decode_threshold("8") == 0x80000000000000
    assert threshold_to_probability(decode_threshold("0")) == 1.0
    for bad in ("", "g", "ABC", "123456789012345"):
        with pytest.raises(TraceStateError):
            decode_threshold(bad)


def test_head_threshold_combines_into_the_product_probability() -> None:
    # head sampled at 50 % (th:8), tail keeps with 10 %: the span now stands for 20
    t = combined_threshold("ot=th:8", 0.1, None)
    assert threshold_to_probability(t) == pytest.approx(0.05, rel=1e-4)
    assert encode_threshold(t) == th(0.05)
    # head at 25 % (th:c) and tail at 1/3
    assert threshold_to_probability(combined_threshold("ot=th:c", 1 / 3, None)) == pytest.approx(1 / 12, rel=1e-4)
    # no (or an unparseable) head th: the tail's own probability
    assert encode_threshold(combined_threshold("", 0.1, None)) == "e666"
    assert encode_threshold(combined_threshold("ot=th:xyz", 0.1, None)) == "e666"


def test_consistent_thresholds_keep_the_stricter_one() -> None:
    half = probability_to_threshold(0.5, 14)
    assert encode_threshold(combined_threshold("ot=th:c", 0.5, half)) == "c"  # head 25 % is stricter
    assert encode_threshold(combined_threshold("ot=th:4", 0.5, half)) == "8"  # tail 50 % is stricter


def test_other_vendors_entries_are_preserved() -> None:
    state = "rojo=00f067aa0ba902b7,ot=th:8;rv:abcdef01234567;x:y,congo=t61rcWkgMzE"
    out = with_threshold(state, probability_to_threshold(0.05))
    assert out == "ot=th:f3333;rv:abcdef01234567;x:y,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    assert ot_fields(out) == {"th": "f3333", "rv": "abcdef01234567", "x": "y"}
    assert with_threshold("", 0) == "ot=th:0"
    assert with_threshold("congo=t61rcWkgMzE", probability_to_threshold(0.5)) == "ot=th:8,congo=t61rcWkgMzE"
    with pytest.raises(TraceStateError):
        with_threshold("not a member", 0)


def test_randomness_from_rv_else_the_trace_id() -> None:
    trace_id = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
    assert randomness("", trace_id) == 0x0a0b0c0d0e0f10
    assert randomness("ot=rv:ffffffffffffff", trace_id) == 0xffffffffffffff
    assert randomness("ot=rv:short", trace_id) == 0x0a0b0c0d0e0f10
