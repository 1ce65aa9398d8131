"""What the ``trace_tests`` stage leaves for the stages after it: in ``trace.notes[TEST_FAILURES]``, one
:class:`TestFailure` per failing spec that is due to page (its failure rate and count over the window are
above the ``alerting`` thresholds). ``alert_routing`` with ``trigger: trace_tests`` pages them."""

from __future__ import annotations

from dataclasses import dataclass

TEST_FAILURES = "trace_tests.failures"
ALERTNAME = "TraceTestFailed"


@dataclass(frozen=True, slots=True)
class TestFailure:
    """A spec of a test failed on a trace, often enough to page."""

    test: str
    spec: str
    file: str
    team: str  # spec.owner, else the owner of the failing span's service
    service: str  # the service of the first failing span ("" when no span was selected)
    trace_id: bytes
    failed_assertions: tuple[str, ...]
    actual: str  # the first failing check: "service: span (id): actual X" or its error
    failures: int  # failures of this spec within the window
    runs: int  # traces it ran on within the window
    window_s: float
    examples: tuple[bytes, ...]  # recent failing trace ids, newest first

    __test__ = False

    @property
    def rate(self) -> float:
        return self.failures / self.runs if self.runs else 0.0

    def annotations(self, trace_url: str) -> dict[str, str]:
        """What an alert about this failure says (alert_routing's annotations)."""
        trace_id = self.trace_id.hex()
        out = {
            "summary": f"trace test {self.test!r}: spec {self.spec!r} failing on {self.failures} of {self.runs} "
                       f"traces in the last {self.window_s:g}s",
            "trace_id": trace_id,
            "example_trace_ids": ",".join(t.hex() for t in self.examples),
            "test_file": self.file,
            "failed_assertions": "; ".join(self.failed_assertions),
            "actual": self.actual,
        }
        if trace_url:
            out["trace_url"] = trace_url.format(trace_id=trace_id)
        return out
