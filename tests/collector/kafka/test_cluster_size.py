"""Two samplers in one consumer group, each with an ``ema_throughput`` policy and ``use_cluster_size``: each
learns the group's size from the live assignment and aims at half the goal, so the fleet keeps the goal."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from collector.exporters.kafka.partition import partition_for_key
from tests.collector.kafka.broker import Broker, create_topic_sync
from tests.collector.kafka.util import Sampler, make_request
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(240)

GOAL = 300.0  # spans per second, for the whole fleet
TRACES_PER_SEC = 240  # of 5 spans: 1200 spans/s offered, four times the goal
PARTITIONS = 4
WARMUP_S = 12.0
MEASURE_S = 24.0

OVERLAY = f"""
processors:
  tail_sampling:
    decision_wait: 500ms
    policies:
      - name: budget
        type: ema_throughput
        ema_throughput:
          goal_throughput_per_sec: {GOAL}
          adjustment_interval: 2s
          field_list: [service.name, root.name]
          use_cluster_size: true
"""


async def produce(address: str, topic: str, seconds: float, stop_at: list[float]) -> int:
    """One record per trace, keyed by hex trace id on the partition the kafka exporter would choose."""
    rnd = random.Random(11)
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    sent = 0
    try:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            tick = time.monotonic()
            for _ in range(TRACES_PER_SEC // 10):
                req = make_request(rnd, traces=1, spans_per_trace=5, service=rnd.choice(["shop", "shop", "cart"]))
                tid = req.resource_spans[0].scope_spans[0].spans[0].trace_id
                key = tid.hex().encode()
                await producer.send(topic, req.SerializeToString(), key=key,
                                    partition=partition_for_key(key, PARTITIONS))
                sent += 5
            await producer.flush()
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    finally:
        await producer.stop()
    stop_at.append(time.monotonic())
    return sent


def exported(s: Sampler) -> float:
    return s.proc.metric("otelcol_exporter_sent_spans_total", exporter="file")


def test_two_samplers_with_use_cluster_size_keep_the_fleet_at_the_goal(tmp_path: Path, broker: Broker,
                                                                       collector_env: dict[str, str]) -> None:
    create_topic_sync(broker.address, "spans", PARTITIONS)
    budget = tmp_path / "budget.yaml"
    budget.write_text(OVERLAY)  # the shipped sampler config, with the ema_throughput policy on top
    samplers = [Sampler(tmp_path / f"sampler{i}", broker, collector_env, "spans", group="budget",
                        extra_configs=(budget,)) for i in range(2)]
    for s in samplers:
        s.proc.wait_ready()
    wait_for(lambda: all("assigned" in s.proc.stderr and "assigned nothing" not in s.proc.stderr.splitlines()[-1]
                         for s in samplers), timeout=60, interval=0.2)

    async def run() -> tuple[float, float, int]:
        stop_at: list[float] = []
        load = asyncio.create_task(produce(broker.address, "spans", WARMUP_S + MEASURE_S + 2, stop_at))
        await asyncio.sleep(WARMUP_S)
        before = sum(exported(s) for s in samplers)
        t0 = time.monotonic()
        await asyncio.sleep(MEASURE_S)
        after = sum(exported(s) for s in samplers)
        t1 = time.monotonic()
        sent = await load
        return (after - before) / (t1 - t0), t1 - t0, sent

    rate, _, sent = asyncio.run(run())
    assert sent > GOAL * (WARMUP_S + MEASURE_S) * 2  # the offered load was well above the goal
    assert all(exported(s) > 0 for s in samplers), "both samplers kept traces"
    assert GOAL * 0.9 <= rate <= GOAL * 1.1, f"fleet kept {rate:.1f} spans/s, goal {GOAL}"
