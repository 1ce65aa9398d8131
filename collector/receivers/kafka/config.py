"""Config of the ``kafka`` receiver, with the contrib kafka receiver's names and defaults
(``group_id`` defaults to ``tracetriage``).

```yaml
receivers:
  kafka:
    brokers: [localhost:9092]
    traces: {topics: [otlp_spans], encoding: otlp_proto}   # or topic: x, or the old top-level topic
    group_id: tracetriage
    initial_offset: latest          # or earliest: where a new group starts
    session_timeout: 10s
    heartbeat_interval: 3s
    max_fetch_size: 0               # bytes per fetch (0: aiokafka's 50 MiB)
    max_partition_fetch_size: 1048576
    max_fetch_wait: 250ms
    commit_interval: 1s             # how often done offsets are committed (autocommit.interval in contrib)
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from collector.config.schema import Duration, field
from collector.kafka_common import KafkaClientConfig

DEFAULT_TOPIC = "otlp_spans"
DEFAULT_ENCODING = "otlp_proto"
ENCODINGS = ("otlp_proto", "otlp_json")


@dataclass(frozen=True)
class TracesConfig:
    topics: tuple[str, ...] = ()
    topic: str = ""
    encoding: str = ""


@dataclass(frozen=True)
class AutoCommitConfig:
    """Accepted for contrib compatibility: offsets are always committed by the receiver, only for
    records the pipeline is done with; ``interval`` sets how often."""

    enable: bool = True
    interval: Duration = field(Duration(1.0), gt=0)


@dataclass(frozen=True, kw_only=True)
class KafkaReceiverConfig(KafkaClientConfig):
    traces: TracesConfig = TracesConfig()
    topic: str = ""
    encoding: str = ""
    group_id: str = field("tracetriage", min_len=1)
    initial_offset: Literal["latest", "earliest"] = "latest"
    session_timeout: Duration = field(Duration(10.0), gt=0)
    heartbeat_interval: Duration = field(Duration(3.0), gt=0)
    min_fetch_size: int = field(1, ge=1)
    max_fetch_size: int = field(0, ge=0)
    max_partition_fetch_size: int = field(1_048_576, ge=1)
    max_fetch_wait: Duration = field(Duration(0.25), ge=0)
    autocommit: AutoCommitConfig = AutoCommitConfig()
    protocol_version: str = ""

    @property
    def traces_topics(self) -> tuple[str, ...]:
        if self.traces.topics:
            return self.traces.topics
        if self.traces.topic:
            return (self.traces.topic,)
        return (self.topic or DEFAULT_TOPIC,)

    @property
    def traces_encoding(self) -> str:
        return self.traces.encoding or self.encoding or DEFAULT_ENCODING

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from self.client_issues()
        if self.traces.topics and self.traces.topic:
            yield ("traces", "give topics or topic, not both")
        path = "traces.encoding" if self.traces.encoding else "encoding"
        if self.traces_encoding not in ENCODINGS:
            yield (path, f"must be one of {', '.join(ENCODINGS)}, got {self.traces_encoding!r}")
        if self.heartbeat_interval >= self.session_timeout:
            yield ("heartbeat_interval", "must be less than session_timeout")


__all__ = ["KafkaReceiverConfig", "TracesConfig"]
