"""The ``kafka`` receiver: spans from Kafka topics through a consumer group, committing only what the
pipeline is done with (at-least-once)."""

from __future__ import annotations

from collector.component import Factory, Kind, Settings
from collector.consumer import TracesConsumer
from collector.receivers.kafka.config import KafkaReceiverConfig, TracesConfig
from collector.receivers.kafka.offsets import OffsetRange, PartitionTracker
from collector.receivers.kafka.receiver import KafkaReceiver


def create(settings: Settings, config: KafkaReceiverConfig, next_consumer: TracesConsumer) -> KafkaReceiver:
    return KafkaReceiver(settings, config, next_consumer)


factory = Factory(
    "kafka", Kind.RECEIVER, KafkaReceiverConfig, create,
    description="Consumes otlp_proto/otlp_json trace records from Kafka as a consumer group member.",
)

__all__ = ["KafkaReceiver", "KafkaReceiverConfig", "OffsetRange", "PartitionTracker", "TracesConfig", "create",
           "factory"]
