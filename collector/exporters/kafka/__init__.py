"""The ``kafka`` exporter: spans to a Kafka topic, keyed by trace id, as the contrib kafka exporter."""

from __future__ import annotations

from collector.component import Factory, Kind, Settings
from collector.exporters.kafka.config import KafkaExporterConfig, ProducerConfig, SignalConfig
from collector.exporters.kafka.exporter import KafkaExporter, error_from_kafka


def create(settings: Settings, config: KafkaExporterConfig) -> KafkaExporter:
    return KafkaExporter(settings, config)


factory = Factory(
    "kafka", Kind.EXPORTER, KafkaExporterConfig, create,
    description="Writes batches to a Kafka topic (otlp_proto or otlp_json), optionally keyed by trace id.",
)

__all__ = ["KafkaExporter", "KafkaExporterConfig", "ProducerConfig", "SignalConfig", "create",
           "error_from_kafka", "factory"]
