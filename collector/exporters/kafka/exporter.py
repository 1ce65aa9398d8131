"""The ``kafka`` exporter: batches to a Kafka topic through aiokafka's producer.

Each batch becomes as few records as the size limit and ``partition_traces_by_id`` allow (see
:mod:`.marshal`). The shared queue/retry helper holds batches while the brokers are unreachable:
a broker down at start is not fatal, the producer keeps connecting in the background. Errors: a
broker unreachable, a timeout or a retriable Kafka error is retriable; a record the broker refuses
as too large is cut in halves, down to one span, which is then counted as rejected.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.component import Host, Settings
from collector.consumer import Capabilities
from collector.errors import ComponentStartError, ConsumerError, PermanentError
from collector.exporters.helper import QueuedRetrySender
from collector.exporters.kafka import produce_encoding, record_batch
from collector.exporters.kafka.config import KafkaExporterConfig
from collector.exporters.kafka.marshal import (
    RECORD_OVERHEAD,
    Record,
    build_records,
    identity,
    records_by_trace,
    split_record,
    walk,
)
from collector.kafka_common import client_kwargs
from collector.model import SpanBatch
from collector.otlpjson import encode_request
from collector.wire import InvalidSpanIds, WireError

CONNECT_BACKOFF_MAX = 5.0
STOP_TIMEOUT = 10.0


def error_from_kafka(err: BaseException) -> ConsumerError:
    """A Kafka client error as a retriable or permanent ConsumerError."""
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, KafkaConnectionError | KafkaTimeoutError | TimeoutError | ConnectionError):
        return ConsumerError(text, retriable=True)
    if isinstance(err, KafkaError):
        # UnknownTopicOrPartition is retriable in Kafka's own classification (the topic may appear).
        return ConsumerError(text, retriable=True) if err.retriable else PermanentError(text)
    return ConsumerError(text, retriable=True)


def json_encode(payload: bytes) -> bytes:
    return encode_request(ExportTraceServiceRequest.FromString(payload))


class KafkaExporter:
    # Its sender logs what a shutdown cut short by the deadline leaves behind (on disk or lost).
    reports_held_data = True
    __slots__ = ("_config", "_connected", "_connector", "_encode", "_logger", "_name", "_producer", "_sender",
                 "_stopped")

    def __init__(self, settings: Settings, config: KafkaExporterConfig) -> None:
        self._config = config
        self._logger = settings.logger
        self._name = str(settings.id)
        self._encode = json_encode if config.traces_encoding == "otlp_json" else identity
        self._producer: AIOKafkaProducer | None = None
        self._connected = False
        self._connector: asyncio.Task[None] | None = None
        self._stopped = False
        self._sender = QueuedRetrySender.from_config(settings, self._send, config)

    @property
    def connected(self) -> bool:
        return self._connected

    def _producer_kwargs(self) -> dict[str, Any]:
        cfg = self._config
        prod = cfg.producer
        kwargs = client_kwargs(cfg)
        timeout_ms = int(max(float(cfg.timeout), 1.0) * 1000) if cfg.timeout > 0 else 30_000
        kwargs.update(
            acks=prod.acks,
            compression_type=None if prod.compression == "none" else prod.compression,
            linger_ms=int(prod.linger * 1000),
            max_batch_size=prod.max_message_bytes,
            max_request_size=prod.max_message_bytes,
            request_timeout_ms=timeout_ms,
            enable_idempotence=False,  # tansu and some managed brokers lack it; retries may duplicate
        )
        return kwargs

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        if self._connector is not None or self._stopped:
            return
        try:
            kwargs = self._producer_kwargs()
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ComponentStartError(f"exporter {self._name}", e) from e
        await self._sender.start(host)
        self._connector = asyncio.create_task(self._connect(kwargs), name=f"{self._name}-connect")

    async def _connect(self, kwargs: dict[str, Any]) -> None:
        """Start a producer, retrying with backoff until the brokers answer."""
        delay = 0.1
        attempts = 0
        while not self._stopped:
            producer = AIOKafkaProducer(**kwargs)
            attempts += 1
            try:
                await producer.start()
            except KafkaError as e:
                await producer.stop()
                if attempts == 1 or attempts % 20 == 0:
                    self._logger.warning(
                        "Exporter %s: cannot reach Kafka brokers %s (%s); spans wait in the sending queue, "
                        "retrying", self._name, ",".join(self._config.brokers), e,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, CONNECT_BACKOFF_MAX)
                continue
            self._producer = producer
            self._connected = True
            self._logger.info("Exporter %s: connected to Kafka brokers %s", self._name,
                              ",".join(self._config.brokers))
            return

    async def consume_traces(self, batch: SpanBatch) -> None:
        await self._sender.consume_traces(batch)

    async def _send(self, batch: SpanBatch) -> int | None:
        producer = self._producer
        if producer is None or not self._connected:
            raise ConsumerError(f"not connected to Kafka brokers {','.join(self._config.brokers)} yet",
                                retriable=True)
        cfg = self._config
        topic = cfg.traces_topic
        limit = cfg.producer.max_message_bytes - RECORD_OVERHEAD
        try:
            partitions: int | None = None
            if cfg.partition_traces_by_id:
                partitions = len(await producer.partitions_for(topic))
            if partitions is not None:
                try:
                    records = records_by_trace(batch.split(), partitions, limit, self._encode)
                except InvalidSpanIds:  # not from a receiver that checks ids: sent as it is, span by span
                    records = build_records(walk(batch.to_bytes(), partitions), partitioned=True, limit=limit,
                                            encode=self._encode)
            else:
                payload = batch.to_bytes()
                if len(payload) <= limit and self._encode is identity:
                    records = [Record(None, None, payload, batch.span_count, payload)]
                else:
                    records = build_records(walk(payload, None), partitioned=False, limit=limit,
                                            encode=self._encode)
            return await self._produce(producer, topic, records)
        except WireError as e:
            raise PermanentError(f"batch is not a valid ExportTraceServiceRequest: {e}") from None
        except (KafkaError, OSError) as e:
            raise error_from_kafka(e) from None

    async def _produce(self, producer: AIOKafkaProducer, topic: str, records: list[Record]) -> int:
        """Send records; those refused as too large are halved and sent again. Returns the number of
        spans rejected for good (single spans larger than the broker accepts)."""
        rejected = 0
        while records:
            sent: list[tuple[Record, asyncio.Future[Any]]] = []
            too_large: list[Record] = []
            for rec in records:
                try:
                    fut = await producer.send(topic, rec.value, key=rec.key, partition=rec.partition)
                except MessageSizeTooLargeError:
                    too_large.append(rec)
                    continue
                sent.append((rec, fut))
            results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
            failure: BaseException | None = None
            for (rec, _), result in zip(sent, results, strict=True):
                if isinstance(result, MessageSizeTooLargeError):
                    too_large.append(rec)
                elif isinstance(result, BaseException) and failure is None:
                    failure = result
            if failure is not None:
                raise error_from_kafka(failure)
            records = []
            for rec in too_large:
                if rec.spans <= 1:
                    rejected += rec.spans
                    self._logger.error("Exporter %s: a span of %d bytes is larger than Kafka accepts; dropped",
                                       self._name, len(rec.value))
                    continue
                records.extend(split_record(rec, self._encode))
        return rejected

    async def shutdown(self) -> None:
        if self._stopped:
            return
        try:
            await self._sender.drain()
        finally:
            self._stopped = True
            self._connected = False
            connector, self._connector = self._connector, None
            if connector is not None and not connector.done():
                connector.cancel()
                await asyncio.gather(connector, return_exceptions=True)
            producer, self._producer = self._producer, None
            if producer is not None:
                try:
                    async with asyncio.timeout(STOP_TIMEOUT):
                        await producer.stop()
                except (TimeoutError, KafkaError) as e:
                    self._logger.warning("Exporter %s: producer did not close cleanly: %s", self._name, e)


produce_encoding.install()
record_batch.install()  # (when google-crc32c is installed: it is a dependency)

__all__ = ["KafkaExporter", "error_from_kafka"]
