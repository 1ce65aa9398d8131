"""The ``otlp`` receiver: OTLP traces over gRPC (:4317) and HTTP (:4318), as the OTel Collector's."""

from __future__ import annotations

from collector.component import Factory, Kind, Settings
from collector.consumer import TracesConsumer
from collector.receivers.otlp.config import GRPCConfig, HTTPConfig, OTLPReceiverConfig, ProtocolsConfig
from collector.receivers.otlp.receiver import OTLPReceiver


def create(settings: Settings, config: OTLPReceiverConfig, next_consumer: TracesConsumer) -> OTLPReceiver:
    return OTLPReceiver(settings, config, next_consumer)


factory = Factory(
    "otlp",
    Kind.RECEIVER,
    OTLPReceiverConfig,
    create,
    stability="beta",
    description="OTLP traces over gRPC and HTTP (protobuf and JSON)",
)

__all__ = [
    "GRPCConfig",
    "HTTPConfig",
    "OTLPReceiver",
    "OTLPReceiverConfig",
    "ProtocolsConfig",
    "create",
    "factory",
]
