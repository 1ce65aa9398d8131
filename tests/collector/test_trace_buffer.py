"""The per-pipeline trace buffer: assembly, decision timing, late spans, overflow, size limit, shutdown."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import ComponentID, ConsumerError, Host, Kind, RefusedError, Settings, SpanBatch, Telemetry
from collector.consumer import Capabilities, TraceBufferSettings
from collector.model import Ack, Trace
from collector.trace_buffer import TraceBuffer

PREFIX = "otelcol_processor_tail_sampling_"


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def span(trace: int, span_id: int, parent: int = 0, error: bool = False, name: str = "op") -> Span:
    s = Span(trace_id=tid(trace), span_id=span_id.to_bytes(8, "big"), name=name,
             parent_span_id=parent.to_bytes(8, "big") if parent else b"",
             start_time_unix_nano=1_000, end_time_unix_nano=2_000)
    s.attributes.append(KeyValue(key="k", value=AnyValue(int_value=span_id)))
    if error:
        s.status.code = Status.STATUS_CODE_ERROR
    return s


def batch(*groups: tuple[str, list[Span]]) -> SpanBatch:
    req = ExportTraceServiceRequest()
    for service, spans in groups:
        rs = req.resource_spans.add()
        rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
        ss = rs.scope_spans.add()
        ss.scope.name = "lib"
        ss.spans.extend(spans)
    return SpanBatch.from_bytes(req.SerializeToString())


class KeepErrors:
    """A trace stage for these tests: keeps traces with a span in error, records what it saw."""

    def __init__(self, buffer: TraceBufferSettings) -> None:
        self.buffer_settings = buffer
        self.seen: list[Trace] = []

    def capabilities(self) -> Capabilities:
        return Capabilities(trace_level=True, defines_buffer=True)

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        self.seen.extend(traces)
        return [t for t in traces if any(s.status.code == Status.STATUS_CODE_ERROR for _, s in t.iter_spans())]

    async def start(self, host: Host) -> None:
        return None

    async def shutdown(self) -> None:
        return None


class Rename:
    """A stage that changes the root span's name (proves changes made by one stage reach the output)."""

    buffer_settings = TraceBufferSettings()

    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=True, trace_level=True)

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        for t in traces:
            for _, s in t.iter_spans():
                if not s.parent_span_id:
                    s.name = "renamed"
                    t.mark_modified()
        return traces

    async def start(self, host: Host) -> None:
        return None

    async def shutdown(self) -> None:
        return None


class Sink:
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []
        self.refuse = 0

    async def consume_traces(self, b: SpanBatch) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConsumerError("busy", retriable=True, retry_after=0.01)
        self.batches.append(b)
        b.release()

    def spans(self) -> dict[bytes, Span]:
        out = {}
        for b in self.batches:
            for rs in b.request.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out[s.span_id] = s
        return out

    def traces(self) -> set[bytes]:
        return {s.trace_id for s in self.spans().values()}


def make(tel: Telemetry | None = None, stages: list | None = None,
         **kw: object) -> tuple[TraceBuffer, KeepErrors, Sink]:
    cfg = TraceBufferSettings(**{"decision_wait": 0.2, **kw})  # type: ignore[arg-type]
    keep = KeepErrors(cfg)
    sink = Sink()
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, tel or Telemetry(), logging.getLogger("tb"))
    buf = TraceBuffer(settings, cfg, [(f"s{i}", s) for i, s in enumerate(stages or [keep])], sink)
    return buf, keep, sink


def metric(tel: Telemetry, name: str) -> float:
    return tel.registry.get_sample_value(name, {"processor": "tail_sampling"}) or 0.0


async def wait_until(cond: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_spans_from_several_batches_and_services_become_one_trace() -> None:
    tel = Telemetry()
    buf, keep, sink = make(tel)
    await buf.start(Host())
    root = span(1, 1, error=True)
    await buf.consume_traces(batch(("frontend", [root, span(2, 5)])))
    await buf.consume_traces(batch(("payment", [span(1, 2, parent=1), span(1, 3, parent=2)]), ("db", [span(2, 6, 5)])))
    assert buf.pending_traces == 2 and buf.pending_spans == 5
    assert metric(tel, PREFIX + "sampling_traces_on_memory") == 2
    await wait_until(lambda: len(keep.seen) == 2)
    await wait_until(lambda: sink.batches)
    t1 = next(t for t in keep.seen if t.trace_id == tid(1))
    assert t1.span_count == 3 and {g.service_name for g in t1.groups()} == {"frontend", "payment"}
    got = sink.spans()
    assert set(got) == {(i).to_bytes(8, "big") for i in (1, 2, 3)}  # trace 2 had no error: dropped
    assert got[root.span_id] == root  # unchanged, attributes and all
    assert metric(tel, PREFIX + "new_trace_id_received_total") == 2
    await wait_until(lambda: metric(tel, PREFIX + "sampling_traces_on_memory") == 0)
    await buf.shutdown()


async def test_resource_and_scope_survive() -> None:
    buf, _, sink = make(decision_wait=0.05)
    await buf.start(Host())
    await buf.consume_traces(batch(("frontend", [span(1, 1, error=True)])))
    await wait_until(lambda: sink.batches)
    rs = sink.batches[0].request.resource_spans[0]
    assert rs.resource.attributes[0].value.string_value == "frontend"
    assert rs.scope_spans[0].scope.name == "lib"
    await buf.shutdown()


async def test_decision_wait_after_root_received() -> None:
    buf, keep, _ = make(decision_wait=30.0, decision_wait_after_root_received=0.05)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 2, parent=1)])))
    await asyncio.sleep(0.2)
    assert not keep.seen  # no root yet: waits for decision_wait
    await buf.consume_traces(batch(("a", [span(1, 1, error=True)])))
    await wait_until(lambda: keep.seen)
    assert keep.seen[0].span_count == 2
    await buf.shutdown()


async def test_late_spans_follow_the_cached_decision() -> None:
    tel = Telemetry()
    buf, keep, sink = make(tel, decision_wait=0.05, sampled_cache_size=100, non_sampled_cache_size=100)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 1, error=True), span(2, 2)])))
    await wait_until(lambda: len(keep.seen) == 2)
    await wait_until(lambda: sink.batches)
    await buf.consume_traces(batch(("a", [span(1, 10, parent=1), span(2, 20, parent=2)])))
    assert buf.pending_traces == 0  # neither started a new trace
    await wait_until(lambda: (10).to_bytes(8, "big") in sink.spans())
    assert (20).to_bytes(8, "big") not in sink.spans()
    assert metric(tel, PREFIX + "early_releases_from_cache_decision_total") == 1
    assert metric(tel, "tracetriage_trace_buffer_late_spans_dropped_total") == 1
    assert metric(tel, PREFIX + "sampling_late_span_age_count") == 2
    await buf.shutdown()


async def test_late_spans_without_cache_start_a_new_trace() -> None:
    buf, keep, sink = make(decision_wait=0.05)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 1, error=True)])))
    await wait_until(lambda: len(keep.seen) == 1)
    await buf.consume_traces(batch(("a", [span(1, 2, parent=1, error=True)])))
    assert buf.pending_traces == 1
    await wait_until(lambda: len(keep.seen) == 2)
    await buf.shutdown()
    assert set(sink.spans()) == {(1).to_bytes(8, "big"), (2).to_bytes(8, "big")}


async def test_overflow_decides_the_oldest_early() -> None:
    tel = Telemetry()
    buf, keep, sink = make(tel, decision_wait=30.0, num_traces=3)
    await buf.start(Host())
    for t in range(1, 6):
        await buf.consume_traces(batch(("a", [span(t, t, error=True)])))
    assert buf.pending_traces == 3
    assert [t.trace_id for t in keep.seen] == [tid(1), tid(2)]
    assert metric(tel, PREFIX + "sampling_trace_dropped_too_early_total") == 2
    await wait_until(lambda: sink.traces() == {tid(1), tid(2)})
    await buf.shutdown()
    assert sink.traces() == {tid(t) for t in range(1, 6)}


async def test_block_on_overflow_refuses_and_loses_nothing() -> None:
    buf, _keep, sink = make(decision_wait=0.1, num_traces=2, block_on_overflow=True)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 1, error=True), span(2, 2, error=True)])))
    third = batch(("a", [span(3, 3, error=True)]))
    with pytest.raises(RefusedError):
        await buf.consume_traces(third)
    assert buf.pending_traces == 2
    await wait_until(lambda: buf.pending_traces == 0)
    await buf.consume_traces(third)  # the client's retry
    await buf.shutdown()
    assert sink.traces() == {tid(1), tid(2), tid(3)}


async def test_trace_over_maximum_size_is_dropped() -> None:
    tel = Telemetry()
    buf, _keep, sink = make(tel, decision_wait=0.05, maximum_trace_size_bytes=150, non_sampled_cache_size=10)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, i, error=True) for i in range(1, 4)])))
    await buf.consume_traces(batch(("a", [span(2, 9, error=True)])))
    assert buf.pending_traces == 1
    assert metric(tel, "tracetriage_trace_buffer_traces_too_large_total") == 1
    await buf.consume_traces(batch(("a", [span(1, 7, error=True)])))  # late span of the dropped trace
    await buf.shutdown()
    assert sink.traces() == {tid(2)}


@pytest.mark.parametrize("drop", [False, True])
async def test_shutdown_decides_or_drops_pending(drop: bool) -> None:
    buf, _keep, sink = make(decision_wait=30.0, drop_pending_traces_on_shutdown=drop)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 1, error=True), span(2, 2, error=True)])))
    await buf.shutdown()
    assert sink.traces() == (set() if drop else {tid(1), tid(2)})
    with pytest.raises(RefusedError):
        await buf.consume_traces(batch(("a", [span(3, 3)])))


async def test_acks_complete_when_every_trace_is_decided_and_sent() -> None:
    buf, _keep, sink = make(decision_wait=0.05)
    sink.refuse = 2  # the next stage pushes back twice: the buffer retries
    await buf.start(Host())
    done: list[int] = []
    b = batch(("a", [span(1, 1, error=True), span(2, 2)]))
    b.acks = [Ack(lambda: done.append(1))]
    await buf.consume_traces(b)
    await asyncio.sleep(0.01)
    assert not done
    await wait_until(lambda: done == [1])
    assert sink.traces() == {tid(1)}
    await buf.shutdown()


async def test_stages_run_in_order_and_changes_reach_the_output() -> None:
    cfg = TraceBufferSettings(decision_wait=0.05)
    keep = KeepErrors(cfg)
    buf, _, sink = make(stages=[Rename(), keep], decision_wait=0.05)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 1, error=True), span(1, 2, parent=1)])))
    await wait_until(lambda: sink.batches)
    names = {s.span_id: s.name for s in sink.spans().values()}
    assert names == {(1).to_bytes(8, "big"): "renamed", (2).to_bytes(8, "big"): "op"}
    await buf.shutdown()


async def test_malformed_bytes_are_refused_permanently() -> None:
    buf, _, _ = make()
    with pytest.raises(ConsumerError) as ei:
        await buf.consume_traces(SpanBatch.from_bytes(b"\x0a\x05\x12\x09zz", span_count=1))
    assert not ei.value.retriable


def test_wire_split_handles_interleaved_runs_and_non_canonical_spans() -> None:
    """Spans of a trace in runs, interleaved with other traces, and one span encoded out of field order."""
    from collector.wire import frame, split_by_trace

    spans = [span(1, 1), span(1, 2, 1), span(2, 3), span(1, 4, 1), span(2, 5, 3), span(2, 6, 3)]
    odd = span(3, 7)
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.spans.extend(spans)
    # Append a span whose fields are in reverse order (valid protobuf, not canonical): the protobuf fallback.
    body = b"".join(reversed(_fields_of(odd.SerializeToString())))
    data = frame(0x0A, frame(0x12, ss.SerializeToString() + frame(0x12, body)))
    chunks = split_by_trace(data)
    by = chunks[0].by_trace
    assert {k: v.count for k, v in by.items()} == {tid(1): 3, tid(2): 3, tid(3): 1}
    assert by[tid(1)].has_root and by[tid(2)].has_root and by[tid(3)].has_root
    from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

    for t, ids in ((1, [1, 2, 4]), (2, [3, 5, 6]), (3, [7])):
        decoded = ScopeSpans.FromString(b"".join(by[tid(t)].entries))
        assert [int.from_bytes(s.span_id, "big") for s in decoded.spans] == ids
        assert by[tid(t)].start == 1_000 and by[tid(t)].end == 2_000


def _fields_of(data: bytes) -> list[bytes]:
    from collector.wire import iter_fields

    return [data[f:e] for _, f, _, e in iter_fields(data, 0, len(data))]


class PoisonedKeepErrors(KeepErrors):
    """KeepErrors that raises on any round holding trace 13 (a trace a stage cannot handle)."""

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        if any(t.trace_id == tid(13) for t in traces):
            raise ValueError("cannot handle trace 13")
        return super().process_traces(traces)


async def test_a_stage_raising_costs_only_the_trace_it_raises_on(caplog: pytest.LogCaptureFixture) -> None:
    """The round is retried trace by trace: trace 13 goes on unchanged and is counted, the others get the
    stage's decision (trace 2, without an error, is dropped; traces 1 and 3 are kept)."""
    tel = Telemetry()
    cfg = TraceBufferSettings(decision_wait=0.05)
    stage = PoisonedKeepErrors(cfg)
    sink = Sink()
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, tel, logging.getLogger("tb"))
    buf = TraceBuffer(settings, cfg, [("poisoned", stage)], sink)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 1, error=True), span(2, 2), span(13, 3), span(3, 4, error=True)])))
    await wait_until(lambda: sink.batches)
    await wait_until(lambda: buf.pending_traces == 0)
    assert sink.traces() == {tid(1), tid(3), tid(13)}
    assert tel.registry.get_sample_value("tracetriage_trace_stage_errors_total", {"processor": "poisoned"}) == 1
    assert "failed on 1 of 4 traces" in caplog.text and "cannot handle trace 13" in caplog.text
    await buf.shutdown()


class Busy(KeepErrors):
    """Keeps every trace after burning a known amount of CPU per round."""

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass
        return traces


async def test_each_stage_s_cpu_time_is_counted() -> None:
    tel = Telemetry()
    cfg = TraceBufferSettings(decision_wait=0.05)
    buf, _, sink = make(tel, stages=[KeepErrors(cfg), Busy(cfg)], decision_wait=0.05)
    await buf.start(Host())
    await buf.consume_traces(batch(("a", [span(1, 1, error=True)])))
    await wait_until(lambda: sink.batches)
    await buf.shutdown()

    def cpu(stage: str) -> float:
        return tel.registry.get_sample_value("tracetriage_trace_stage_cpu_seconds_total",
                                             {"processor": stage}) or 0.0

    assert cpu("s1") >= 0.05  # the CPU it burnt (thread time: not the wall clock)
    assert 0 < cpu("s0") < 0.05


async def test_status_shows_what_is_held_without_walking_it() -> None:
    """The status page's snapshot: traces and spans held, the oldest's age, bytes estimated from the mean span
    size of the last decided traces, overflow decisions and late spans counted."""
    buf, _, _ = make(decision_wait=0.3, num_traces=2, sampled_cache_size=10)
    await buf.start(Host())
    empty = buf.status()
    assert (empty["traces"], empty["spans"], empty["bytes"], empty["oldest_trace_age"]) == (0, 0, 0, None)
    assert empty["stages"] == ["s0"] and empty["num_traces"] == 2
    await buf.consume_traces(batch(("a", [span(1, 1, error=True), span(1, 2, parent=1)])))
    await asyncio.sleep(0.05)
    await buf.consume_traces(batch(("a", [span(2, 3, error=True)]), ("b", [span(3, 4)])))  # trace 1 overflows
    held = buf.status()
    assert (held["traces"], held["spans"], held["overflow_decisions"]) == (2, 2, 1)
    assert held["oldest_trace_age"] is not None and 0 <= held["oldest_trace_age"] < 0.3
    await wait_until(lambda: buf.pending_traces == 0)
    await buf.consume_traces(batch(("a", [span(2, 5, parent=3)])))  # late: trace 2 was kept
    await buf.consume_traces(batch(("a", [span(4, 6)])))
    after = buf.status()
    one = len(span(4, 6).SerializeToString())
    assert after["late_spans_kept"] == 1 and after["late_spans_dropped"] == 0
    assert after["spans"] == 1 and one <= after["bytes"] <= one + 8  # framing: a tag and a length per span
    assert after["decision_timer_lag"] >= 0
    await buf.shutdown()
