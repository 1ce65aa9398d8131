"""The kafka receiver leaves the split by trace to the stages that need it: the batches it hands on are split
with its own service's options, also with another service in the same process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from collector.config.service import build_config
from collector.registry import Registry
from collector.service import Service
from tests.collector.kafka.broker import Broker, create_topic
from tests.collector.test_service import CLEAN, ERROR_ATTRIBUTE, ERROR_STATUS, maybe_error, request


def kafka_service(address: str, group: str, processors: dict[str, Any]) -> Service:
    raw = {
        "receivers": {"kafka": {"brokers": [address], "topic": "spans", "group_id": group,
                                "initial_offset": "earliest"}},
        "processors": processors,
        "exporters": {"debug": {}},
        "service": {
            "telemetry": {"metrics": {"address": ""}},
            "pipelines": {"traces": {"receivers": ["kafka"], "processors": list(processors),
                                     "exporters": ["debug"]}},
        },
    }
    service = Service(build_config(raw, Registry.default(plugins=False)))
    service.build()
    return service


async def test_two_services_split_kafka_records_by_their_own_options(broker: Broker) -> None:
    await create_topic(broker.address, "spans", 1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.address)
    await producer.start()
    try:
        await producer.send_and_wait("spans", request())
    finally:
        await producer.stop()
    sampling = kafka_service(broker.address, "sampling", {
        "tail_sampling": {"decision_wait": "60s", "policies": [{"name": "all", "type": "always_sample"}]}})
    triage = kafka_service(broker.address, "triage", {"root_cause": {"decision_wait": "60s"}})
    await sampling.start()
    await triage.start()
    try:
        deadline = time.monotonic() + 30
        while len(maybe_error(sampling)) < 3 or len(maybe_error(triage)) < 3:
            assert time.monotonic() < deadline, "the receivers did not take the record within 30s"
            await asyncio.sleep(0.05)
        assert maybe_error(sampling) == {ERROR_STATUS: True, ERROR_ATTRIBUTE: False, CLEAN: False}
        assert maybe_error(triage) == {ERROR_STATUS: True, ERROR_ATTRIBUTE: True, CLEAN: False}
    finally:
        await triage.shutdown()
        await sampling.shutdown()
