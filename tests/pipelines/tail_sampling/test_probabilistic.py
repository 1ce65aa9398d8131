"""probabilistic: contrib's hash and threshold, so decisions match the OTel Collector's by trace id."""

from __future__ import annotations

import random

import pytest

from collector.model import Trace
from pipelines.tail_sampling.policies import Decision
from pipelines.tail_sampling.policies.probabilistic import (
    DEFAULT_HASH_SALT,
    MAX_UINT64,
    Probabilistic,
    ProbabilisticConfig,
    fnv1a_64,
    threshold,
)
from tests.pipelines.tail_sampling.support import cfg


def by_id(trace_id: bytes) -> Trace:
    return Trace(trace_id, 0.0)  # the policy reads only the trace id


def policy(percentage: float, salt: str = "") -> Probabilistic:
    return Probabilistic("p", cfg(ProbabilisticConfig, sampling_percentage=percentage, hash_salt=salt))


@pytest.mark.parametrize(("data", "expected"), [
    (b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8),
])
def test_fnv1a_64_reference_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_64(data) == expected
    assert fnv1a_64(data[3:], fnv1a_64(data[:3])) == expected  # salt then trace id = one stream


@pytest.mark.parametrize(("ratio", "expected"), [
    (0.0, 0), (-0.5, 0), (1.0, MAX_UINT64), (1.5, MAX_UINT64),
    (0.25, 0x3FFFFFFFFFFFFFFF),  # (2**64 - 1) / 4 = 2**62 - 0.25, truncated
    (0.5, 0x7FFFFFFFFFFFFFFF),
    # float64 0.1 is slightly above 0.1: the product rounded to 64 significant bits, then truncated.
    (0.1, 0x19999999999999FF),
])
def test_threshold_as_contrib_computes_it(ratio: float, expected: int) -> None:
    assert threshold(ratio) == expected


# Trace ids with FNV-1a("default-hash-seed" + id) / 2**64, from contrib's algorithm.
FIXED = [
    ("00000000000000000000000000000000", 0xE19536EED1BBAC3D),  # 0.881
    ("000000000000000052969a8955571a3f", 0x77283E4155B1A1F3),  # 0.465
    ("ffffffffffffffffffffffffffffffff", 0x17BEC3739634FE2D),  # 0.093
    ("4bf92f3577b34da6a3ce929d0e0e4736", 0xA54533BA2E4970B5),  # 0.646
    ("0af7651916cd43dd8448eb211c80319c", 0x33BF83D45F51634C),  # 0.202
]


@pytest.mark.parametrize(("trace_id", "hashed"), FIXED)
def test_fixed_trace_ids(trace_id: str, hashed: int) -> None:
    tid = bytes.fromhex(trace_id)
    assert fnv1a_64(DEFAULT_HASH_SALT.encode() + tid) == hashed
    for pct in (1, 10, 25, 50, 75, 90, 99):
        expected = Decision.SAMPLED if hashed <= threshold(pct / 100) else Decision.NOT_SAMPLED
        assert policy(pct).evaluate(by_id(tid), 0.0) is expected
    share = hashed / 2**64
    assert (policy(10).evaluate(by_id(tid), 0.0) is Decision.SAMPLED) == (share <= 0.1)
    assert (policy(50).evaluate(by_id(tid), 0.0) is Decision.SAMPLED) == (share <= 0.5)


def test_custom_salt_changes_the_hash() -> None:
    tid = bytes(16)
    assert fnv1a_64(tid, fnv1a_64(b"test-salt")) == 0x8149711E69875CC0
    assert policy(50, "test-salt").evaluate(by_id(tid), 0.0) is Decision.NOT_SAMPLED  # 0.505
    assert policy(51, "test-salt").evaluate(by_id(tid), 0.0) is Decision.SAMPLED


@pytest.mark.parametrize(("pct", "salt", "expected_pct"), [
    (100, "", 100), (0, "", 0), (10, "", 10), (25, "", 25), (33, "", 33), (33, "test-salt", 33), (150, "", 100),
])
def test_share_over_random_ids(pct: float, salt: str, expected_pct: float) -> None:
    rng = random.Random(1)
    p = policy(pct, salt)
    ids = [rng.randbytes(16) for _ in range(10_000)]
    sampled = sum(p.evaluate(by_id(t), 0.0) is Decision.SAMPLED for t in ids)
    assert abs(sampled / 100 - expected_pct) <= 1.5  # 10k ids: binomial sd <= 0.5 point
    # Deterministic: the same ids give the same decisions, in another instance too.
    again = policy(pct, salt)
    assert [p.evaluate(by_id(t), 0.0) for t in ids[:500]] == [again.evaluate(by_id(t), 0.0) for t in ids[:500]]


@pytest.mark.parametrize(("pct", "salt"), [(10, ""), (33, "test-salt"), (100, ""), (0, "")])
def test_batch_votes_equal_one_by_one(pct: float, salt: str) -> None:
    """The processor asks for the votes of a whole round at once (``evaluate_all``, array hashing): the
    same decisions as one by one."""
    from pipelines.tail_sampling.policies.probabilistic import fnv1a_64_many

    rng = random.Random(2)
    traces = [by_id(rng.randbytes(16)) for _ in range(3000)] + [by_id(bytes(16)), by_id(b"\xff" * 16)]
    state = fnv1a_64((salt or DEFAULT_HASH_SALT).encode())
    assert fnv1a_64_many([t.trace_id for t in traces], state) == [fnv1a_64(t.trace_id, state) for t in traces]
    p = policy(pct, salt)
    assert p.evaluate_all(traces, 0.0) == [p.evaluate(t, 0.0) for t in traces]
    odd = [*traces[:3], Trace(b"short", 0.0)]  # an id not 16 bytes long: hashed one by one
    assert p.evaluate_all(odd, 0.0) == [p.evaluate(t, 0.0) for t in odd]

