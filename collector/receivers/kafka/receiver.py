"""The ``kafka`` receiver: a consumer group member feeding batches of records to the pipeline.

Loop: ``getmany`` -> for each partition's records one :class:`~collector.model.SpanBatch` (the
records' ``ExportTraceServiceRequest`` bytes joined, after checking each parses) carrying an
:class:`~collector.model.Ack` for the records' offset range -> ``consume_traces``. A retriable refusal
is retried with backoff while nothing more is fetched (backpressure); a permanent one is logged,
counted and the range released. Offsets are committed every ``autocommit.interval``, on partition
revocation and at shutdown, only up to the oldest record whose batch some stage still holds (see
:mod:`.offsets`): what this instance had not finished is read again by the partition's next owner
(at-least-once). Inside a service, shutdown first only stops fetching and the final commit comes after
the whole pipeline has drained (:meth:`KafkaReceiver.finish`), so what the trace buffer decides and
exports while shutting down is committed too. A malformed record is counted, logged with
topic/partition/offset and skipped. A broker down at start is not fatal: the consumer keeps connecting
in the background.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import Counter, Gauge

from collector.component import Host, Settings
from collector.consumer import TracesConsumer
from collector.errors import ComponentStartError, ConsumerError
from collector.kafka_common import client_kwargs
from collector.model import Ack, SpanBatch, count_spans
from collector.otlpjson import decode_request
from collector.receivers.kafka.config import KafkaReceiverConfig
from collector.receivers.kafka.group_size import GroupSizeAssignor
from collector.receivers.kafka.offsets import PartitionTracker
from collector.wire import certain_span_count

TRANSPORT = "kafka"
MAX_RECORDS = 500
FETCH_TIMEOUT_MS = 500
CONNECT_BACKOFF_MAX = 5.0
RETRY_BACKOFF_INITIAL = 0.1
RETRY_BACKOFF_MAX = 5.0
SHUTDOWN_ACK_WAIT = 2.0
STOP_TIMEOUT = 10.0


class _Metrics:
    __slots__ = ("_children", "_lag", "_malformed", "_messages", "accepted", "receiver", "refused")

    def __init__(self, settings: Settings) -> None:
        tel = settings.telemetry
        self.receiver = str(settings.id)
        self.accepted = tel.receiver_accepted_spans.labels(receiver=self.receiver, transport=TRANSPORT)
        self.refused = tel.receiver_refused_spans.labels(receiver=self.receiver, transport=TRANSPORT)
        labels = ("receiver", "topic", "partition")
        self._messages = tel.counter("otelcol_kafka_receiver_messages", "Number of Kafka records received.",
                                     labels)
        self._malformed = tel.counter(
            "otelcol_kafka_receiver_unmarshal_failed_spans",
            "Number of Kafka records that could not be decoded as traces (skipped).", labels)
        self._lag = tel.gauge("otelcol_kafka_receiver_offset_lag",
                              "Records between the partition's end and the offset committed by this receiver.",
                              labels)
        self._children: dict[tuple[str, TopicPartition], Any] = {}

    def _child(self, metric: Counter | Gauge, kind: str, tp: TopicPartition) -> Any:
        key = (kind, tp)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(receiver=self.receiver, topic=tp.topic, partition=str(tp.partition))
            self._children[key] = child
        return child

    def messages(self, tp: TopicPartition) -> Any:
        return self._child(self._messages, "messages", tp)

    def malformed(self, tp: TopicPartition) -> Any:
        return self._child(self._malformed, "malformed", tp)

    def lag(self, tp: TopicPartition) -> Any:
        return self._child(self._lag, "lag", tp)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, receiver: KafkaReceiver) -> None:
        self._receiver = receiver

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._receiver._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._receiver._on_assigned(assigned)


class KafkaReceiver:
    """See the module docstring."""

    def __init__(self, settings: Settings, config: KafkaReceiverConfig, next_consumer: TracesConsumer) -> None:
        self._config = config
        self._next = next_consumer
        self._logger = settings.logger
        self._name = str(settings.id)
        self._metrics = _Metrics(settings)
        self._split_options = settings.split_options
        self._json = config.traces_encoding == "otlp_json"
        self._consumer: AIOKafkaConsumer | None = None
        self._trackers: dict[TopicPartition, PartitionTracker] = {}
        self._task: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._host: Host | None = None
        self._stopping = False
        self._stopped = False
        self._defer_finish = False
        self._finished = False
        self._commit_lock = asyncio.Lock()
        self._acked = asyncio.Event()  # set whenever a batch's records are done
        self._assignor = GroupSizeAssignor()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _consumer_kwargs(self) -> dict[str, Any]:
        cfg = self._config
        kwargs = client_kwargs(cfg)
        kwargs.update(
            group_id=cfg.group_id,
            enable_auto_commit=False,
            auto_offset_reset=cfg.initial_offset,
            session_timeout_ms=int(cfg.session_timeout * 1000),
            heartbeat_interval_ms=int(cfg.heartbeat_interval * 1000),
            max_partition_fetch_bytes=cfg.max_partition_fetch_size,
            fetch_min_bytes=cfg.min_fetch_size,
            fetch_max_wait_ms=int(cfg.max_fetch_wait * 1000),
            partition_assignment_strategy=(self._assignor,),
        )
        if cfg.max_fetch_size > 0:
            kwargs["fetch_max_bytes"] = cfg.max_fetch_size
        return kwargs

    async def start(self, host: Host) -> None:
        if self._task is not None or self._stopped:
            return
        try:
            kwargs = self._consumer_kwargs()
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ComponentStartError(f"receiver {self._name}", e) from e
        self._host = host
        host.consumer_groups.setdefault(self._config.group_id, []).append(self.group_members)
        self._logger.info("Starting Kafka consumer %s: brokers %s, topics %s, group %r (%s)", self._name,
                          ",".join(self._config.bootstrap_servers), ",".join(self._config.traces_topics),
                          self._config.group_id, kwargs.get("security_protocol", "PLAINTEXT"))
        self._task = asyncio.create_task(self._run(kwargs), name=f"{self._name}-consume")

    async def _run(self, kwargs: dict[str, Any]) -> None:
        try:
            consumer = await self._connect(kwargs)
            if consumer is None:
                return
            self._committer = asyncio.create_task(self._commit_loop(), name=f"{self._name}-commit")
            await self._fetch_loop(consumer)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._logger.exception("Receiver %s: the consume loop failed", self._name)
            if self._host is not None:
                self._host.report_fatal_error(e)

    async def _connect(self, kwargs: dict[str, Any]) -> AIOKafkaConsumer | None:
        delay = 0.1
        attempts = 0
        topics = list(self._config.traces_topics)
        while not self._stopping:
            consumer = AIOKafkaConsumer(**kwargs)
            attempts += 1
            try:
                await consumer.start()
                consumer.subscribe(topics, listener=_Listener(self))
            except KafkaError as e:
                await consumer.stop()
                if attempts == 1 or attempts % 20 == 0:
                    self._logger.warning("Receiver %s: cannot reach Kafka brokers %s (%s); retrying",
                                         self._name, ",".join(self._config.brokers), e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, CONNECT_BACKOFF_MAX)
                continue
            self._consumer = consumer
            self._logger.info("Receiver %s: consuming %s as group %r from brokers %s", self._name,
                              ",".join(topics), self._config.group_id, ",".join(self._config.bootstrap_servers))
            return consumer
        return None

    def defer_finish(self) -> None:
        """The service will call :meth:`finish` once every stage downstream has shut down: :meth:`shutdown`
        then only stops fetching, and the offsets of records whose traces the pipeline decides and exports
        while it drains (a trace buffer deciding its pending traces) are committed too, rather than read
        again after a restart."""
        self._defer_finish = True

    async def shutdown(self) -> None:
        """Stop fetching; unless :meth:`defer_finish` was called, also commit and leave the group."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            try:
                async with asyncio.timeout(FETCH_TIMEOUT_MS / 1000 + 2.0):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if not self._defer_finish:
            await self.finish()

    async def finish(self) -> None:
        """Wait briefly for what the pipeline still holds, commit, leave the group (once)."""
        if self._finished:
            return
        self._finished = True
        deadline = time.monotonic() + SHUTDOWN_ACK_WAIT
        while any(t.outstanding for t in self._trackers.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._acked.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._acked.wait()
            except TimeoutError:
                break
        committer, self._committer = self._committer, None
        if committer is not None:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await self._commit(consumer)
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await consumer.stop()
            except (TimeoutError, KafkaError) as e:
                self._logger.warning("Receiver %s: consumer did not close cleanly: %s", self._name, e)
        for tracker in self._trackers.values():
            tracker.revoked = True
        self._trackers.clear()

    # -- rebalance -----------------------------------------------------------------------------------------

    def group_members(self) -> int | None:
        """Members of this receiver's consumer group at the last rebalance (None: not assigned yet)."""
        return self._assignor.members

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            if tp not in self._trackers:
                self._trackers[tp] = PartitionTracker()
        self._logger.info("Receiver %s: assigned %s", self._name, _names(assigned))

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is not None and revoked:
            await self._commit(consumer, revoked)
        for tp in revoked:
            tracker = self._trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoked = True  # what is still held downstream will be read again by the next owner
        if revoked:
            self._logger.info("Receiver %s: revoked %s", self._name, _names(revoked))

    # -- commit --------------------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        interval = float(self._config.autocommit.interval)
        while True:
            await asyncio.sleep(interval)
            consumer = self._consumer
            if consumer is not None:
                await self._commit(consumer)
                self._update_lag(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None) -> None:
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            for tp, tracker in self._trackers.items():
                if only is not None and tp not in only:
                    continue
                offset = tracker.to_commit()
                if offset is not None:
                    offsets[tp] = offset
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except (KafkaError, AssertionError) as e:
                # A rebalance under way, a broker away: the next commit (or the next owner) catches up.
                self._logger.warning("Receiver %s: commit of %s failed: %s", self._name, _offsets(offsets), e)
                return
            for tp, offset in offsets.items():
                owned = self._trackers.get(tp)
                if owned is not None:
                    owned.committed = offset

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp, tracker in self._trackers.items():
            high = consumer.highwater(tp)
            if high is not None and tracker.committed is not None:
                self._metrics.lag(tp).set(max(high - tracker.committed, 0))

    # -- fetch and deliver -----------------------------------------------------------------------------------

    async def _fetch_loop(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping:
            try:
                data = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS)
            except KafkaError as e:
                self._logger.warning("Receiver %s: fetch failed, retrying: %s", self._name, e)
                await asyncio.sleep(1.0)
                continue
            for tp, records in data.items():
                if records and not self._stopping:
                    await self._deliver(tp, records)

    def _decode(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> tuple[bytes, int] | None:
        """The record's request bytes and span count, or None (counted and logged) if malformed."""
        value = record.value
        try:
            if not isinstance(value, bytes):
                raise ValueError("record has no value")
            if self._json:
                request = decode_request(value)
                return request.SerializeToString(), count_spans(request)
            spans = certain_span_count(value)  # the compiled check, when it is certain; else protobuf
            if spans is None:  # passed on as protobuf read it (canonical bytes: repeated id fields resolved)
                request = ExportTraceServiceRequest.FromString(value)
                return request.SerializeToString(), count_spans(request)
            return value, spans
        except (DecodeError, ValueError) as e:
            self._metrics.malformed(tp).inc()
            self._logger.warning(
                "Receiver %s: skipping malformed record at topic %s partition %d offset %d: %s",
                self._name, tp.topic, tp.partition, record.offset, e,
            )
            return None

    async def _deliver(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        tracker = self._trackers.get(tp)
        if tracker is None:
            tracker = PartitionTracker()
            self._trackers[tp] = tracker
        self._metrics.messages(tp).inc(len(records))
        payloads: list[bytes] = []
        spans = 0
        for record in records:
            decoded = self._decode(tp, record)
            if decoded is not None and decoded[1]:
                payloads.append(decoded[0])
                spans += decoded[1]
        offsets = tracker.add(records[0].offset, records[-1].offset + 1)
        if not payloads:
            offsets.mark_done()
            return
        # Split by trace only where a stage needs it, with this service's options.
        batch = SpanBatch.from_bytes(payloads[0] if len(payloads) == 1 else b"".join(payloads), spans,
                                     self._split_options)
        acked = self._acked

        def done() -> None:
            offsets.mark_done()
            acked.set()

        batch.acks = [Ack(done)]
        delay = RETRY_BACKOFF_INITIAL
        while True:
            try:
                await self._next.consume_traces(batch)
            except ConsumerError as e:
                if not e.retriable:
                    self._metrics.refused.inc(spans)
                    self._logger.error("Receiver %s: pipeline refused %d spans from %s[%d] for good: %s",
                                       self._name, spans, tp.topic, tp.partition, e)
                    batch.release()
                    return
                if self._stopping:
                    # Not committed: the partition's next reader gets these records again.
                    return
                wait = max(delay, min(e.retry_after or 0.0, RETRY_BACKOFF_MAX))
                self._logger.debug("Receiver %s: pipeline busy (%s), retrying in %.2fs", self._name, e, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, RETRY_BACKOFF_MAX)
                continue
            self._metrics.accepted.inc(spans)
            return


def _names(tps: set[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)) or "nothing"


def _offsets(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items()))


__all__ = ["KafkaReceiver"]
