"""Exemplars waiting for their trace's sampling decision: written when kept, forgotten when dropped, bounded
in trace ids and per trace, expired after their timeout; each outcome counted."""

from __future__ import annotations

from prometheus_client.samples import Exemplar

from collector import Telemetry
from pipelines.exposition import PendingExemplars


def counter(telemetry: Telemetry, name: str, reason: str = "") -> float:
    for line in telemetry.exposition().decode().splitlines():
        if line.startswith(name + "{") and (not reason or f'reason="{reason}"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_kept_written_dropped_forgotten_and_bounds_counted() -> None:
    telemetry = Telemetry()
    pending = PendingExemplars(telemetry, "spanmetrics", max_traces=2, per_trace=1, timeout=10.0)
    written: list[tuple[int, Exemplar]] = []
    forgotten: list[str] = []

    class Series:
        def __init__(self, name: str) -> None:
            self.name = name

        def write_exemplar(self, bucket: int, exemplar: Exemplar) -> None:
            written.append((bucket, exemplar))

        def exemplar_forgotten(self) -> None:
            forgotten.append(self.name)

    assert pending.add(b"\x01" * 16, (Series("a"), 3, 12.5, b"\xaa" * 8, 1000.0))
    assert not pending.add(b"\x01" * 16, (Series("b"), 4, 1.0, b"\xbb" * 8, 1000.0))  # over per_trace
    assert pending.add(b"\x02" * 16, (Series("c"), 0, 0.5, b"\xcc" * 8, 1000.0))
    assert not pending.add(b"\x03" * 16, (Series("d"), 0, 0.5, b"\xdd" * 8, 1000.0))  # over max_traces
    assert len(pending) == 2
    assert counter(telemetry, "tracetriage_exemplars_dropped_total", "overflow") == 2

    pending.traces_decided(kept=[b"\x01" * 16], dropped=[b"\x02" * 16])
    assert written == [(3, Exemplar({"trace_id": "01" * 16, "span_id": "aa" * 8}, 12.5, 1000.0))]
    assert counter(telemetry, "tracetriage_exemplars_written_total") == 1
    assert counter(telemetry, "tracetriage_exemplars_dropped_total", "not_sampled") == 1
    assert forgotten == ["c"]  # (the series told, to file another; refused ones were never counted)
    assert len(pending) == 0

    pending.add(b"\x04" * 16, (Series("e"), 1, 2.0, b"\xee" * 8, 1000.0))
    pending.expire(now=1e12)  # never decided: forgotten after the timeout
    assert len(pending) == 0
    assert counter(telemetry, "tracetriage_exemplars_dropped_total", "expired") == 1
    assert forgotten == ["c", "e"]
    pending.traces_decided(kept=[b"\x04" * 16], dropped=[])
    assert len(written) == 1
