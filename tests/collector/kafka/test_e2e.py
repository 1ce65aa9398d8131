"""The two-tier topology end to end: OTel SDK -> agent -> Kafka (tansu) -> sampler(s) -> file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

from collector.exporters.kafka.partition import partition_for_key
from collector.otlpjson import decode_request
from tests.collector.kafka.broker import Broker, create_topic_sync
from tests.collector.kafka.util import Agent, Loader, Sampler, spans_of, traces_of
from tests.conftest import wait_for
from tests.e2e.test_sdk import make_spans

pytestmark = pytest.mark.timeout(120)


async def _read_topic(address: str, topic: str, count: int) -> list[tuple[int, bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=address, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[int, bytes | None, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(out) < count:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    out += [(tp.partition, r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_sdk_agent_kafka_sampler_file(tmp_path: Path, broker: Broker, collector_env: dict[str, str],
                                      encoding: str) -> None:
    create_topic_sync(broker.address, "spans", 4)
    agent = Agent(tmp_path / "agent", broker, collector_env, "spans", encoding=encoding)
    sampler = Sampler(tmp_path / "sampler", broker, collector_env, "spans", encoding=encoding)
    agent.proc.wait_ready()
    sampler.proc.wait_ready()
    spans = make_spans("checkout", n_traces=40)
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{agent.grpc_port}", insecure=True)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    sent = {(s.context.trace_id.to_bytes(16, "big"), s.context.span_id.to_bytes(8, "big")) for s in spans}

    wait_for(lambda: set(sampler.spans()) >= sent, timeout=60, interval=0.2)
    assert len(sampler.spans()) == len(sent)  # nothing twice on the happy path
    assert agent.proc.metric("otelcol_exporter_sent_spans_total", exporter="kafka") == len(sent)
    accepted = sampler.proc.metric("otelcol_receiver_accepted_spans_total", receiver="kafka", transport="kafka")
    assert accepted == len(sent)

    # The records themselves: keyed by hex trace id, on the partition the key hashes to, decodable.
    records = asyncio.run(_read_topic(broker.address, "spans", 1))
    seen: dict[bytes, int] = {}
    total = 0
    for partition, key, value in records:
        request = decode_request(value) if encoding == "otlp_json" else ExportTraceServiceRequest.FromString(value)
        if encoding == "otlp_json":
            assert json.loads(value)["resourceSpans"]
        ids = spans_of(request)
        total += len(ids)
        assert key is not None and len(key) == 32 and partition_for_key(key, 4) == partition
        for tid, _ in ids:
            assert seen.setdefault(tid, partition) == partition  # every span of a trace on one partition
    assert total == len(sent)
    assert len(records) < len(seen)  # many traces share a record


def test_two_samplers_one_group_see_whole_traces(tmp_path: Path, broker: Broker,
                                                 collector_env: dict[str, str]) -> None:
    create_topic_sync(broker.address, "spans", 4)
    agent = Agent(tmp_path / "agent", broker, collector_env, "spans")
    samplers = [Sampler(tmp_path / f"sampler{i}", broker, collector_env, "spans") for i in range(2)]
    agent.proc.wait_ready()
    for s in samplers:
        s.proc.wait_ready()
    # Both members must hold partitions before the load starts (a fresh group needs a moment).
    wait_for(lambda: all("assigned" in s.proc.stderr and "assigned nothing" not in s.proc.stderr.splitlines()[-1]
                         for s in samplers), timeout=40, interval=0.2)
    loader = Loader(agent.grpc_port)
    for _ in range(20):
        loader.send(traces=25, spans_per_trace=4)
    loader.close()
    wait_for(lambda: sum(len(s.spans()) for s in samplers) >= len(loader.acked), timeout=60, interval=0.2)
    per_instance = [traces_of(s.spans()) for s in samplers]
    assert all(per_instance), "both instances got traces"
    everything = traces_of(list(loader.acked))
    for tid, span_ids in everything.items():
        holders = [i for i, traces in enumerate(per_instance) if tid in traces]
        assert len(holders) == 1, f"trace {tid.hex()} seen by {holders}"
        assert per_instance[holders[0]][tid] == span_ids


def test_malformed_record_is_skipped_and_counted(tmp_path: Path, broker: Broker,
                                                 collector_env: dict[str, str]) -> None:
    create_topic_sync(broker.address, "spans", 1)
    good = ExportTraceServiceRequest()
    span = good.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8,
                                                                  name="ok")
    assert span.name == "ok"

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.address, enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait("spans", b"\xff\xff\xff not protobuf")
            await producer.send_and_wait("spans", good.SerializeToString())
        finally:
            await producer.stop()

    asyncio.run(produce())
    sampler = Sampler(tmp_path / "sampler", broker, collector_env, "spans")
    sampler.proc.wait_ready()
    wait_for(lambda: sampler.spans() == [(b"\x01" * 16, b"\x02" * 8)], timeout=40, interval=0.2)
    assert sampler.proc.metric("otelcol_kafka_receiver_unmarshal_failed_spans_total", topic="spans") == 1
    assert "offset 0" in sampler.proc.stderr and "malformed record" in sampler.proc.stderr
    assert sampler.proc.proc.poll() is None
