"""The latency walk against the load generator's ground truth: generated traffic with latency faults, as
wire requests through the pipeline's trace buffer into the real ``root_cause`` stage (configured with a
latency threshold), and the blamed span compared with the span the fault lengthened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from bench.loadgen import Generator, load_topology
from bench.loadgen.faults import parse_fault
from bench.loadgen.truth import Truth
from collector import Host, SpanBatch
from collector.config import decode
from collector.consumer import TraceBufferSettings
from collector.model import Trace
from collector.trace_buffer import TraceBuffer
from pipelines.root_cause import FAILURES, Config, Failure, RootCauseProcessor, factory
from tests.pipelines import RecordingConsumer, make_settings


class Notes:
    """A trace stage after root_cause that keeps what it left on each trace (as alert_routing reads it)."""

    trace_level: ClassVar[bool] = True
    defines_buffer: ClassVar[bool] = False
    mutates_data = False
    buffer_settings = TraceBufferSettings()

    def __init__(self) -> None:
        self.failures: dict[str, list[Failure]] = {}

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        for t in traces:
            self.failures[t.trace_id.hex()] = list(t.note(FAILURES) or ())
        return traces

    async def start(self, host: Host) -> None:
        return None

    async def shutdown(self) -> None:
        return None


@dataclass
class Run:
    truths: list[Truth]
    failures: dict[str, list[Failure]]


async def run(fault: str, config: dict[str, Any], traces: int, seed: int) -> Run:
    proc = factory.create(make_settings("root_cause"), decode(Config, config, "processors.root_cause"),
                          RecordingConsumer())
    assert isinstance(proc, RootCauseProcessor)
    notes = Notes()
    sink = RecordingConsumer()
    buffer = TraceBuffer(make_settings("trace_buffer"), proc.buffer_settings, [("root_cause", proc), ("notes", notes)],
                         sink)
    truths: list[Truth] = []
    for batch in Generator(load_topology(), [parse_fault(fault)], seed=seed).batches(500, traces):
        truths += batch.truths
        await buffer.consume_traces(SpanBatch.from_bytes(batch.payload, batch.spans))
    await buffer.shutdown()  # never started: decides every trace now and delivers inline
    assert sum(b.span_count for b in sink.batches) == sum(t.spans for t in truths)
    return Run(truths, notes.failures)


@pytest.mark.parametrize(
    ("fault", "config", "threshold_ms", "blamed"),
    [
        # A slow service: its operations (GetStock, ReserveItems) take 800 ms more.
        ("latency:inventory:800:0.3", {"latency_threshold": "500ms"}, 500, "inventory"),
        # A slow database: each call to it takes 300 ms more; the CLIENT span blames orders-db (peer.service).
        ("latency:orders-db:300:0.3",
         {"signals": [{"name": "entry", "service": "frontend", "span_name_regex": "^(GET|POST) ",
                       "latency_threshold": "250ms"}]}, 250, "orders-db"),
    ],
)
async def test_latency_blame_matches_ground_truth(fault: str, config: dict[str, Any], threshold_ms: float,
                                                  blamed: str) -> None:
    r = await run(fault, config, traces=800, seed=17)
    slow_with_fault = 0
    service_hits = span_hits = 0
    for truth in r.truths:
        latency = [f for f in r.failures[truth.trace_id] if f.kind == "latency"]
        slow = truth.duration_ms > threshold_ms and not truth.error
        # Every slow root that is not failing is explained, and nothing else.
        assert len(latency) == int(slow), truth
        if not slow or not truth.latency_causes:
            continue  # fast, failing, or slow without the fault
        (f,) = latency
        assert f.duration_ms == pytest.approx(truth.duration_ms)
        assert f.signal_span_name == truth.entrypoint.split("/", 1)[1]
        slow_with_fault += 1
        expected = truth.latency_causes[0]
        assert expected.service == blamed
        service_hits += f.primary.service == expected.service
        span_hits += (f.primary.span_id.hex(), f.primary.span_name) == (expected.span_id, expected.span_name)
    assert slow_with_fault >= 100
    assert service_hits / slow_with_fault >= 0.95
    assert span_hits / slow_with_fault >= 0.95
