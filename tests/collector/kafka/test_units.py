"""Unit-level checks: offset tracking, record keys and partitions, splitting, config, the persistent queue."""

from __future__ import annotations

import logging
import random
import struct
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.component import ComponentID, Host, Kind, Settings
from collector.config.schema import ConfigError, decode
from collector.errors import ComponentStartError
from collector.exporters.helper import QueueConfig, QueuedRetrySender, RetryConfig
from collector.exporters.kafka.config import KafkaExporterConfig
from collector.exporters.kafka.marshal import build_records, walk
from collector.exporters.kafka.partition import murmur2, partition_for_key
from collector.exporters.persistent_queue import PersistentQueue
from collector.extensions.file_storage import FileStorageConfig, FileStorageExtension
from collector.model import SpanBatch
from collector.receivers.kafka.config import KafkaReceiverConfig
from collector.receivers.kafka.offsets import PartitionTracker
from collector.telemetry import Telemetry
from tests.collector.kafka.util import make_request, spans_of


def test_offsets_commit_only_up_to_the_oldest_unfinished_range() -> None:
    t = PartitionTracker()
    a, b, c = t.add(0, 10), t.add(10, 12), t.add(12, 20)
    c.mark_done()
    b.mark_done()
    assert t.to_commit() is None  # 0..9 still held
    a.mark_done()
    assert t.to_commit() == 20 and t.outstanding == 0
    t.committed = 20
    assert t.to_commit() is None
    d = t.add(25, 26)  # offsets may skip (compaction, transactions)
    d.mark_done()
    d.mark_done()  # idempotent
    assert t.to_commit() == 26
    with pytest.raises(ValueError):
        t.add(20, 22)


def test_revoked_partition_ignores_late_completions() -> None:
    t = PartitionTracker()
    r = t.add(0, 5)
    t.revoked = True
    r.mark_done()
    assert t.to_commit() is None


def test_murmur2_and_partition_match_kafka_default_partitioner() -> None:
    rnd = random.Random(3)
    for n in range(40):
        data = rnd.randbytes(n)
        assert murmur2(data) & 0x7FFFFFFF == aiokafka_murmur2(data) & 0x7FFFFFFF
    # Known value of the Java client: Utils.toPositive(Utils.murmur2("21".getBytes())) % 3.
    assert partition_for_key(b"21", 3) == (aiokafka_murmur2(b"21") & 0x7FFFFFFF) % 3


def test_records_are_keyed_by_hex_trace_id_and_grouped_by_partition() -> None:
    req = make_request(random.Random(1), traces=50, spans_per_trace=3)
    records = build_records(walk(req.SerializeToString(), 4), partitioned=True, limit=1_000_000)
    assert len(records) <= 4
    tids: dict[bytes, int] = {}
    total = 0
    for rec in records:
        assert rec.key is not None and rec.partition is not None
        assert rec.key == rec.key.lower() and len(rec.key) == 32 and bytes.fromhex(rec.key.decode())
        assert partition_for_key(rec.key, 4) == rec.partition
        ids = spans_of(ExportTraceServiceRequest.FromString(rec.value))
        total += len(ids)
        for tid, _ in ids:
            assert partition_for_key(tid.hex().encode(), 4) == rec.partition
            assert tids.setdefault(tid, rec.partition) == rec.partition
    assert total == 150


@pytest.mark.parametrize("partitions", [None, 3])
def test_batches_larger_than_max_message_bytes_are_split_not_failed(partitions: int | None) -> None:
    req = make_request(random.Random(2), traces=40, spans_per_trace=25)
    payload = req.SerializeToString()
    limit = 8_000
    records = build_records(walk(payload, partitions), partitioned=partitions is not None, limit=limit)
    assert len(records) > len(payload) // limit
    assert all(len(r.value) <= limit for r in records)
    got = [ids for r in records for ids in spans_of(ExportTraceServiceRequest.FromString(r.value))]
    assert sorted(got) == sorted(spans_of(req))
    for r in records:  # resource and scope travel with every part
        parsed = ExportTraceServiceRequest.FromString(r.value)
        assert parsed.resource_spans[0].resource.attributes[0].value.string_value == "svc"
        assert parsed.resource_spans[0].scope_spans[0].scope.name == "kafka-tests"


def test_exporter_config_names_and_errors() -> None:
    cfg = decode(KafkaExporterConfig, {"topic": "old", "encoding": "otlp_json", "traces": {"topic": "new"},
                                       "producer": {"required_acks": "all"}, "brokers": ["a:1,b:2"]})
    assert (cfg.traces_topic, cfg.traces_encoding, cfg.producer.acks) == ("new", "otlp_json", "all")
    assert cfg.bootstrap_servers == ["a:1", "b:2"]
    assert cfg.producer.max_message_bytes == 1_000_000 and cfg.producer.linger == pytest.approx(0.01)
    with pytest.raises(ConfigError) as e:
        decode(KafkaExporterConfig, {"encoding": "jaeger_proto", "producer": {"compression": "brotli"},
                                     "auth": {"sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}},
                                     "sending_queue": {"storage": "bad/"}}, "exporters.kafka")
    text = str(e.value)
    for needle in ("exporters.kafka.encoding: must be one of otlp_proto, otlp_json",
                   "exporters.kafka.producer.compression: must be one of",
                   "exporters.kafka.auth.sasl.mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
                   "exporters.kafka.sending_queue.storage"):
        assert needle in text


def test_receiver_config_defaults_and_topics() -> None:
    cfg = decode(KafkaReceiverConfig, {})
    assert cfg.group_id == "tracetriage" and cfg.initial_offset == "latest"
    assert cfg.traces_topics == ("otlp_spans",) and cfg.traces_encoding == "otlp_proto"
    assert decode(KafkaReceiverConfig, {"traces": {"topics": ["a", "b"]}}).traces_topics == ("a", "b")
    assert decode(KafkaReceiverConfig, {"topic": "legacy"}).traces_topics == ("legacy",)
    with pytest.raises(ConfigError, match="initial_offset: must be one of"):
        decode(KafkaReceiverConfig, {"initial_offset": "middle"})


def _settings() -> Settings:
    return Settings(ComponentID("kafka"), Kind.EXPORTER, Telemetry(), logging.getLogger("test"))


async def test_persistent_queue_survives_a_restart(tmp_path: Path) -> None:
    log = logging.getLogger("test")
    q = PersistentQueue(tmp_path, 10, fsync=True, logger=log)
    assert await q.open() == 0
    payloads = [make_request(random.Random(i), 2, 2).SerializeToString() for i in range(3)]
    for p in payloads:
        await q.put(SpanBatch.from_bytes(p, 4))
    first = await q.get()
    await q.done(first)  # sent: its file goes
    await q.close()  # the process dies with two batches queued
    q2 = PersistentQueue(tmp_path, 1, fsync=False, logger=log)
    assert await q2.open() == 2 and q2.recovered_spans == 8  # loaded even beyond the capacity
    got = [(await q2.get()).batch.to_bytes() for _ in range(2)]
    assert got == payloads[1:]
    await q2.close()


async def test_storage_extension_must_exist(tmp_path: Path) -> None:
    async def send(batch: SpanBatch) -> None:
        return None

    sender = QueuedRetrySender(_settings(), send, queue=QueueConfig(storage="file_storage/missing"),
                               retry=RetryConfig(), timeout=1)
    with pytest.raises(ComponentStartError, match="file_storage/missing"):
        await sender.start(Host())
    ext = FileStorageExtension(_settings(), FileStorageConfig(directory=str(tmp_path / "nope")))
    with pytest.raises(ComponentStartError, match="does not exist"):
        await ext.start(Host())


def test_trace_partitions_match_partition_for_key() -> None:
    from collector.exporters.kafka.partition import trace_partitions

    rnd = random.Random(5)
    ids = [rnd.randbytes(16) for _ in range(2000)] + [bytes(15) + b"\x01", b"\xff" * 16]
    for n in (1, 3, 4, 12):
        assert trace_partitions(ids, n) == [partition_for_key(t.hex().encode(), n) for t in ids]
    assert trace_partitions([], 4) == []


@pytest.mark.parametrize("limit", [1_000_000, 8_000])
def test_records_by_trace_group_split_batches_by_partition(limit: int) -> None:
    from collector.exporters.kafka.marshal import records_by_trace, split_record
    from collector.wire import split_by_trace

    req = make_request(random.Random(3), traces=40, spans_per_trace=25)
    records = records_by_trace(split_by_trace(req.SerializeToString()), 4, limit)
    assert all(len(r.value) <= limit for r in records)
    got = []
    for rec in records:
        assert rec.key is not None and rec.partition is not None and partition_for_key(rec.key, 4) == rec.partition
        ids = spans_of(ExportTraceServiceRequest.FromString(rec.value))
        assert rec.spans == len(ids)
        for tid, _ in ids:
            assert partition_for_key(tid.hex().encode(), 4) == rec.partition
        got.extend(ids)
    assert sorted(got) == sorted(spans_of(req))
    # A record the broker refuses as too large is cut in halves that keep partition and key.
    halves = split_record(records[0])
    assert len(halves) == 2 and sum(h.spans for h in halves) == records[0].spans
    assert all(h.partition == records[0].partition and h.key == records[0].key for h in halves)


@pytest.mark.parametrize("version", range(9))
def test_flat_produce_encoding_matches_aiokafka(version: int) -> None:
    """The one-join produce request encoding gives aiokafka's bytes exactly, for every request version."""
    from aiokafka.protocol.struct import Struct

    from collector.exporters.kafka import produce_encoding

    classes = {c.API_VERSION: c for c in produce_encoding.produce_request_classes()}
    cls = classes[version]
    rnd = random.Random(version)
    topics = [(f"topic{t}", [(p, rnd.randbytes(rnd.randint(0, 5000)) if p else None) for p in range(3)])
              for t in range(2)]
    fields = {"required_acks": -1, "timeout": 30000, "topics": topics}
    if "transactional_id" in cls.SCHEMA.names:
        fields["transactional_id"] = None if version % 2 else "txn"
    request = cls(**fields)
    produce_encoding.install()
    assert produce_encoding.flat_encode(request) == Struct.encode(request)
    assert request.encode() == Struct.encode(request)
    assert cls(**{**fields, "topics": None}).encode() == Struct.encode(cls(**{**fields, "topics": None}))
    # The connection's framing, in pieces: size, header, body, as aiokafka joins them.
    header = request.build_request_header(correlation_id=77, client_id="tracetriage").encode()
    message = header + Struct.encode(request)
    parts = produce_encoding.framed_parts(request, 77, "tracetriage")
    assert b"".join(parts) == struct.pack(">i", len(message)) + message
    assert any(part is batch for _, partitions in topics for _, batch in partitions for part in parts if batch)


def test_produce_requests_are_prepared_as_the_flat_classes() -> None:
    """aiokafka's ProduceRequest prepares into the classes the flat send writes in pieces (else it would
    fall back to aiokafka's own send, silently)."""
    from aiokafka import conn
    from aiokafka.protocol.produce import ProduceRequest

    from collector.exporters.kafka import produce_encoding

    produce_encoding.install()
    assert conn.AIOKafkaConnection.send is produce_encoding.send
    request = ProduceRequest(transactional_id=None, required_acks=1, timeout=1000,
                             topics=[("t", [(0, b"batch")])])
    for version in range(3, 8):
        prepared = request.prepare({0: (version, version)})
        assert type(prepared) in produce_encoding._PRODUCE_STRUCTS


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_records_by_trace_cut_large_partitions_between_traces(encoding: str) -> None:
    """A partition larger than a record is cut into records of whole traces, straight from the split; only
    a trace larger than a record is cut between its spans. Every span arrives once, byte for byte, under its
    own resource and scope."""
    from collector.exporters.kafka.exporter import json_encode
    from collector.exporters.kafka.marshal import identity, records_by_trace
    from collector.wire import split_by_trace

    rnd = random.Random(11)
    req = ExportTraceServiceRequest()
    sizes: dict[bytes, int] = {}
    for service in ("svc-a", "svc-b"):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = service
        ss = rs.scope_spans.add()
        ss.scope.name = f"scope-{service}"
        for t in range(30):
            tid = rnd.randbytes(16)
            spans = 40 if t == 5 else rnd.randint(2, 8)  # one trace larger than a record
            sizes[tid] = sizes.get(tid, 0) + spans
            for i in range(spans):
                span = ss.spans.add(trace_id=tid, span_id=rnd.randbytes(8), name=f"op-{i}",
                                    start_time_unix_nano=1_700_000_000_000_000_000 + i,
                                    end_time_unix_nano=1_700_000_000_100_000_000)
                span.attributes.add(key="blob").value.string_value = "x" * rnd.randint(200, 900)
    payload = req.SerializeToString()
    limit = 12_000
    encode = json_encode if encoding == "otlp_json" else identity
    records = records_by_trace(split_by_trace(payload), 3, limit, encode)
    assert all(len(r.value) <= limit for r in records)
    expected = {(s.trace_id, s.span_id): (rs.resource, ss.scope, s.SerializeToString())
                for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}
    seen: dict[tuple[bytes, bytes], int] = {}
    records_of: dict[bytes, set[int]] = {}
    for n, rec in enumerate(records):
        parsed = ExportTraceServiceRequest.FromString(rec.raw)
        assert rec.spans == len(spans_of(parsed)) and rec.partition is not None
        for rs in parsed.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    key = (s.trace_id, s.span_id)
                    assert partition_for_key(s.trace_id.hex().encode(), 3) == rec.partition
                    assert expected[key] == (rs.resource, ss.scope, s.SerializeToString())
                    seen[key] = seen.get(key, 0) + 1
                    records_of.setdefault(s.trace_id, set()).add(n)
    assert seen == dict.fromkeys(expected, 1)
    big = [tid for tid, n in sizes.items() if n == 40]
    assert len(big) == 2 and all(len(records_of[tid]) > 1 for tid in big)
    if encoding == "otlp_proto":  # (JSON records may be halved further, between any spans)
        assert all(len(records_of[tid]) == 1 for tid in sizes if tid not in big)


@pytest.mark.parametrize("compression", [0, 1])  # none, gzip
def test_record_batches_with_the_hardware_crc_match_aiokafka(compression: int) -> None:
    """The exporter's batch builder (each value copied once, google-crc32c) gives aiokafka's bytes exactly:
    keys or none, values of every size, headers (aiokafka's own path), and a record that does not fit."""
    from aiokafka.record.default_records import DefaultRecordBatch

    from collector.exporters.kafka import record_batch

    assert record_batch.available(), "google-crc32c (with its C extension) is a dependency"
    rnd = random.Random(compression)
    ours = record_batch.RecordBatchBuilder(2, compression, 0, -1, -1, 0, 100_000)
    theirs = record_batch._DEFAULT(2, compression, 0, -1, -1, 0, 100_000)
    base = 1_700_000_000_000
    for offset in range(200):
        key = None if offset % 3 == 0 else rnd.randbytes(rnd.randint(0, 40))
        value = rnd.randbytes(rnd.choice([0, 1, 63, 64, 200, 5000, 40_000]))
        if offset % 2:
            value = value[:8] * 50  # compressible
        headers = [("h", b"v")] if offset % 7 == 6 else []
        stamp = base + rnd.randint(-5, 500)
        a = ours.append(offset, stamp, key, value, headers)
        b = theirs.append(offset, stamp, key, value, headers)
        assert (a is None) == (b is None), offset
        if a is None:
            break
        assert (a.offset, a.size, a.timestamp) == (b.offset, b.size, b.timestamp)
    else:
        pytest.fail("the batch never filled")
    built, expected = bytes(ours.build()), bytes(theirs.build())
    batch = DefaultRecordBatch(built)
    assert batch.validate_crc()
    if compression:  # (gzip stamps the time, and the Cython builder keeps a compressed batch that grew)
        assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch] == [
            (r.offset, r.timestamp, r.key, r.value, r.headers) for r in DefaultRecordBatch(expected)]
    else:
        assert built == expected


def test_the_exporter_installs_the_hardware_crc_builder() -> None:
    from aiokafka.producer import message_accumulator
    from aiokafka.record.default_records import DefaultRecordBatch

    import collector.exporters.kafka.exporter  # noqa: F401  (installs it)
    from collector.exporters.kafka import record_batch

    assert message_accumulator.DefaultRecordBatchBuilder is record_batch.RecordBatchBuilder
    builder = message_accumulator.BatchBuilder(1_000_000, 0)
    assert builder.append(timestamp=None, key=b"k", value=b"first") is not None
    assert builder.append(timestamp=None, key=None, value=b"x" * 100_000) is not None
    records = list(DefaultRecordBatch(bytes(builder._build())))
    assert [(r.key, r.value) for r in records] == [(b"k", b"first"), (None, b"x" * 100_000)]
