"""``bucket_width``: windows of seconds for demos and tests (the demo runs for a minute), checked at load,
kept across a checkpoint only with the same width."""

from __future__ import annotations

import pytest

from collector.config import ConfigError, decode
from pipelines.slo import Config
from pipelines.slo.openslo import ObjectiveError
from tests.pipelines.slo.helpers import Clock, processor, slo_doc

DEMO = {"tracetriage.io/burn-alerts": "page 14.4x 1m/10s"}


def test_a_one_minute_page_fires_within_seconds_and_resolves_within_seconds() -> None:
    clock = Clock()
    clock.now -= clock.now % 60
    slo = processor([slo_doc("checkout", annotations=DEMO)], clock, bucket_width="5s")
    assert slo.series("checkout").minutes.width == 5 and slo.series("checkout").minutes.size == 4321

    def second(bad: int) -> bool:
        slo.record("checkout", 100 - bad, bad)
        clock.advance(1)
        (status,) = slo.evaluate()
        assert set(status.burn_rates) == {"10s", "1m", "28d"}
        return status.alerts[0].firing

    assert not any(second(0) for _ in range(60))
    fired = next(s for s in range(1, 30) if second(5))  # 5 % of 0.1 %: 50x
    assert 17 <= fired <= 19  # the minute window passes 14.4x once 29 % of it burns (the 10 s one at once)
    assert all(second(5) for _ in range(20))
    resolved = next(s for s in range(1, 30) if not second(0))
    assert resolved <= 15  # the 10 s window, read from 5 s buckets, drops below 14.4x


def test_widths_and_windows_that_do_not_fit_are_refused() -> None:
    for width, message in (("500ms", "must be >= 1"), ("7s", "divides a minute"), ("2m", "must be <= 60")):
        with pytest.raises(ConfigError, match=message):
            decode(Config, {"slos": [slo_doc("a")], "bucket_width": width}, "processors.slo")
    with pytest.raises(ConfigError, match=r"burn_alerts\[0\].short_window: must be a whole number of bucket_width"):
        decode(Config, {"slos": [slo_doc("a")], "bucket_width": "20s", "burn_alerts": [
            {"severity": "page", "burn_rate": 14.4, "long_window": "1m", "short_window": "10s"}]}, "processors.slo")
    with pytest.raises(ObjectiveError, match=r"burn-alerts: page 14.4x 1m/10s: windows must be whole numbers of "
                                             r"the processor's bucket_width \(60s\)"):
        processor([slo_doc("a", annotations=DEMO)], Clock())


def test_a_checkpoint_keeps_the_fine_buckets_only_at_the_same_width() -> None:
    clock = Clock()
    clock.now -= clock.now % 3600
    five = processor([slo_doc("a", annotations=DEMO)], clock, bucket_width="5s")
    five.record("a", 90, 10)
    state = five.state()
    again = processor([slo_doc("a", annotations=DEMO)], clock, bucket_width="5s")
    again.restore(state)
    assert again.series("a").sums(clock.now + 1, 10) == (90, 10)
    ten = processor([slo_doc("a", annotations=DEMO)], clock, bucket_width="10s")
    ten.restore(state)
    assert ten.series("a").sums(clock.now + 1, 10) == (0, 0)  # other buckets: not misread
    assert ten.series("a").sums(clock.now + 1, 86400) == (90, 10)  # the hourly ones are kept
