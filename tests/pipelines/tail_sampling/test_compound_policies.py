"""and, not, drop: how sub-policy votes combine (contrib's and/not/drop tests)."""

from __future__ import annotations

import pytest

from collector.model import Trace
from pipelines.tail_sampling.policies import Decision
from pipelines.tail_sampling.policies.and_ import And
from pipelines.tail_sampling.policies.drop import Drop
from pipelines.tail_sampling.policies.not_ import Not
from tests.pipelines.tail_sampling.support import span, trace

S, N, D = Decision.SAMPLED, Decision.NOT_SAMPLED, Decision.DROPPED
IS, INS = Decision.INVERTED_SAMPLED, Decision.INVERTED_NOT_SAMPLED


class Vote:
    """A policy that always votes the same, counting its evaluations."""

    def __init__(self, decision: Decision, name: str = "v") -> None:
        self.name = name
        self.decision = decision
        self.calls = 0

    def evaluate(self, trace: Trace, now: float) -> Decision:
        self.calls += 1
        return self.decision


T = trace(span())


@pytest.mark.parametrize(("votes", "expected"), [
    ([S, S], S), ([S, N], N), ([N, S], N), ([S, INS], N), ([S, IS], S), ([IS, IS], S), ([S], S),
])
def test_and(votes: list[Decision], expected: Decision) -> None:
    assert And("and", [Vote(v) for v in votes]).evaluate(T, 0.0) is expected


def test_and_stops_at_first_no() -> None:
    later = Vote(S)
    assert And("and", [Vote(N), later]).evaluate(T, 0.0) is N
    assert later.calls == 0


@pytest.mark.parametrize(("votes", "expected"), [([S, S], D), ([S, N], N), ([INS], N), ([IS, S], D)])
def test_drop(votes: list[Decision], expected: Decision) -> None:
    assert Drop("drop", [Vote(v) for v in votes]).evaluate(T, 0.0) is expected


@pytest.mark.parametrize(("vote", "expected"), [(S, N), (N, S), (IS, IS), (INS, INS), (D, D)])
def test_not(vote: Decision, expected: Decision) -> None:
    assert Not("not", Vote(vote)).evaluate(T, 0.0) is expected
