"""``tail_sampling`` processor: keeps the traces that matter, with the OTel Collector's policies and config.

The pipeline's trace buffer (``collector.trace_buffer``) assembles traces with this processor's
:attr:`~TailSamplingProcessor.buffer_settings` and hands each whole trace to it at decision time.
"""

from __future__ import annotations

from collector import Factory, Kind, Settings, TracesConsumer
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.policies import Decision, Policy
from pipelines.tail_sampling.processor import TailSamplingProcessor


def create(settings: Settings, config: Config, next_consumer: TracesConsumer) -> TailSamplingProcessor:
    return TailSamplingProcessor(settings, config, next_consumer)


factory = Factory(
    "tail_sampling", Kind.PROCESSOR, Config, create,
    description="Samples whole traces by policy (errors, latency, attributes, rates), OTel Collector compatible.",
)

__all__ = ["Config", "Decision", "Policy", "TailSamplingProcessor", "create", "factory"]
