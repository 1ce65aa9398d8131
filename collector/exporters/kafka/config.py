"""Config of the ``kafka`` exporter, with the contrib kafka exporter's names and defaults.

```yaml
exporters:
  kafka:
    brokers: [localhost:9092]
    traces: {topic: otlp_spans, encoding: otlp_proto}   # or the older top-level topic / encoding
    partition_traces_by_id: true
    producer: {max_message_bytes: 1000000, required_acks: 1, compression: none, linger: 10ms}
    timeout: 5s
    sending_queue: {queue_size: 1000, storage: file_storage}
```

Precedence as in contrib: ``traces.topic`` over the top-level ``topic`` over ``otlp_spans`` (same for
``encoding`` and ``otlp_proto``). ``protocol_version``, ``producer.flush_max_messages`` and
``producer.allow_auto_topic_creation`` are accepted for compatibility; aiokafka negotiates the
protocol and has no per-request message cap.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from collector.config.schema import Duration, field
from collector.exporters.helper import ExporterBaseConfig
from collector.kafka_common import KafkaClientConfig

DEFAULT_TOPIC = "otlp_spans"
DEFAULT_ENCODING = "otlp_proto"
ENCODINGS = ("otlp_proto", "otlp_json")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
# lz4, snappy and zstd are compressed by aiokafka through this package.
CODEC_PACKAGE = "cramjam"
DEFAULT_LINGER = Duration(0.010)


def codec_available(compression: str) -> bool:
    if compression in ("none", "gzip"):
        return True
    return importlib.util.find_spec(CODEC_PACKAGE) is not None


@dataclass(frozen=True)
class SignalConfig:
    """``traces``: where and how traces are written."""

    topic: str = ""
    encoding: str = ""


@dataclass(frozen=True)
class ProducerConfig:
    max_message_bytes: int = field(1_000_000, ge=1024)
    required_acks: int | str = 1
    compression: str = "none"
    linger: Duration = field(DEFAULT_LINGER, ge=0)
    flush_max_messages: int = field(10_000, ge=0)
    allow_auto_topic_creation: bool = True

    @property
    def acks(self) -> int | Literal["all"]:
        return "all" if self.required_acks in ("all", -1) else int(self.required_acks)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.required_acks not in (0, 1, -1, "all"):
            yield ("required_acks", f"must be 0, 1, -1 or 'all', got {self.required_acks!r}")
        if self.compression not in COMPRESSIONS:
            yield ("compression", f"must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}")
        elif not codec_available(self.compression):
            yield ("compression", f"{self.compression} needs the Python package {CODEC_PACKAGE!r}, which is not "
                                  f"installed (pip install {CODEC_PACKAGE}); use none or gzip")


@dataclass(frozen=True, kw_only=True)
class KafkaExporterConfig(ExporterBaseConfig, KafkaClientConfig):
    traces: SignalConfig = SignalConfig()
    topic: str = ""
    encoding: str = ""
    partition_traces_by_id: bool = False
    producer: ProducerConfig = ProducerConfig()
    protocol_version: str = ""

    @property
    def traces_topic(self) -> str:
        return self.traces.topic or self.topic or DEFAULT_TOPIC

    @property
    def traces_encoding(self) -> str:
        return self.traces.encoding or self.encoding or DEFAULT_ENCODING

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from self.client_issues()
        path = "traces.encoding" if self.traces.encoding else "encoding"
        if self.traces_encoding not in ENCODINGS:
            yield (path, f"must be one of {', '.join(ENCODINGS)}, got {self.traces_encoding!r}")


__all__ = ["DEFAULT_TOPIC", "KafkaExporterConfig", "ProducerConfig", "SignalConfig", "codec_available"]
