"""Completion references (acks) follow batches through fan-out, merge, split and export."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import ComponentID, ConsumerError, FanOutConsumer, Host, Kind, Settings, SpanBatch, Telemetry
from collector.config import decode
from collector.consumer import Capabilities
from collector.model import Ack
from pipelines.batch import factory as batch_factory
from pipelines.batch.split import split_batch


def make_batch(n: int) -> SpanBatch:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(n):
        spans.add(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"), name=f"s{i}")
    return SpanBatch.from_bytes(req.SerializeToString())


class Sink:
    def __init__(self, mutates: bool = False, fail: ConsumerError | None = None) -> None:
        self.mutates = mutates
        self.fail = fail
        self.got: list[SpanBatch] = []

    def capabilities(self) -> Capabilities:
        return Capabilities(mutates_data=self.mutates)

    async def consume_traces(self, batch: SpanBatch) -> None:
        if self.fail is not None:
            raise self.fail
        self.got.append(batch)


def tracked(batch: SpanBatch) -> list[int]:
    done: list[int] = []
    batch.acks = [Ack(lambda: done.append(1))]
    return done


async def test_fanout_each_consumer_holds_its_own_reference() -> None:
    a, b, c = Sink(), Sink(mutates=True), Sink()
    batch = make_batch(3)
    done = tracked(batch)
    await FanOutConsumer([a, b, c]).consume_traces(batch)
    got = a.got + b.got + c.got
    assert len(got) == 3 and all(g is not batch for g in got)
    for g in got[:-1]:
        g.release()
        assert not done
    got[-1].release()
    assert done == [1]


async def test_fanout_refusal_keeps_callers_reference() -> None:
    ok, bad = Sink(), Sink(fail=ConsumerError("full", retriable=True))
    batch = make_batch(2)
    done = tracked(batch)
    with pytest.raises(ConsumerError):
        await FanOutConsumer([ok, bad]).consume_traces(batch)
    ok.got[0].release()
    assert not done  # the caller still holds the original
    batch.release()
    assert done == [1]


def test_concat_and_split_carry_acks() -> None:
    x, y = make_batch(5), make_batch(5)
    dx, dy = tracked(x), tracked(y)
    merged = SpanBatch.concat([x, y])
    parts = split_batch(merged, 3)
    assert [p.span_count for p in parts] == [3, 3, 3, 1]
    for p in parts[:-1]:
        p.release()
    assert not dx and not dy
    parts[-1].release()
    assert dx == [1] and dy == [1]


async def test_batch_processor_passes_acks_to_next() -> None:
    sink = Sink()
    tel = Telemetry()
    cfg = decode(batch_factory.config_class, {"timeout": "0s"})
    proc = batch_factory.create(Settings(ComponentID("batch"), Kind.PROCESSOR, tel, logging.getLogger("b")),
                                cfg, sink)
    await proc.start(Host())
    batch = make_batch(4)
    done = tracked(batch)
    await proc.consume_traces(batch)
    await proc.shutdown()
    assert sum(b.span_count for b in sink.got) == 4 and not done
    for b in sink.got:
        b.release()
    assert done == [1]
