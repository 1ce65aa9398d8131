"""Durable delivery against a real broker that pauses, dies and comes back, and collectors that are killed."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.collector.kafka.broker import Broker, create_topic_sync
from tests.collector.kafka.util import Agent, Loader, Sampler, spans_of
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(150)


def topic_spans(address: str, topic: str, expected: int, timeout: float = 60) -> set[tuple[bytes, bytes]]:
    """Every span in the topic, read until ``expected`` distinct spans are seen or the timeout passes."""

    async def read() -> set[tuple[bytes, bytes]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=address, auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        seen: set[tuple[bytes, bytes]] = set()
        deadline = time.monotonic() + timeout
        try:
            while len(seen) < expected and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        seen.update(spans_of(ExportTraceServiceRequest.FromString(r.value)))
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(read())


def test_broker_paused_under_load_loses_nothing(tmp_path: Path, broker: Broker,
                                                collector_env: dict[str, str]) -> None:
    create_topic_sync(broker.address, "spans", 4)
    agent = Agent(tmp_path / "agent", broker, collector_env, "spans")
    sampler = Sampler(tmp_path / "sampler", broker, collector_env, "spans")
    agent.proc.wait_ready()
    sampler.proc.wait_ready()
    loader = Loader(agent.grpc_port)
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            loader.send(traces=10, spans_per_trace=5)
            time.sleep(0.05)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1.0)
        broker.pause()
        time.sleep(10.0)  # the point of the test: a broker frozen for 10 s
        broker.resume()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(60)
    loader.close()
    assert len(loader.acked) > 1000
    wait_for(lambda: set(sampler.spans()) >= loader.acked, timeout=90, interval=0.5)


def test_broker_replaced_exporter_reconnects_and_delivers(tmp_path: Path, broker: Broker,
                                                          collector_env: dict[str, str]) -> None:
    create_topic_sync(broker.address, "spans", 4)
    agent = Agent(tmp_path / "agent", broker, collector_env, "spans")
    agent.proc.wait_ready()
    loader = Loader(agent.grpc_port)
    loader.send(traces=20, spans_per_trace=5)
    wait_for(lambda: agent.proc.metric("otelcol_exporter_sent_spans_total") == 100, timeout=30)
    before = set(loader.acked)  # delivered to the old broker, gone with it
    broker.stop()
    for _ in range(10):
        loader.send(traces=20, spans_per_trace=5)  # accepted into the queue while no broker runs
    held = loader.acked - before
    # A restarted tansu (memory storage) acknowledges produce requests for a topic it does not have yet and
    # keeps nothing (Kafka refuses them with UNKNOWN_TOPIC_OR_PARTITION). The agent's producer still has
    # the old broker's metadata and may send before the test creates the topic: the agent is paused
    # meanwhile, so the new broker has the topic before the exporter can reach it.
    os.kill(agent.proc.proc.pid, signal.SIGSTOP)
    try:
        broker.start()
        create_topic_sync(broker.address, "spans", 4)
    finally:
        os.kill(agent.proc.proc.pid, signal.SIGCONT)
    loader.close()
    seen = topic_spans(broker.address, "spans", len(held))
    assert seen == held
    assert agent.proc.proc.poll() is None


def test_agent_killed_while_broker_down_loses_no_acknowledged_span(tmp_path: Path, broker: Broker,
                                                                   collector_env: dict[str, str]) -> None:
    create_topic_sync(broker.address, "spans", 4)
    agent = Agent(tmp_path / "agent", broker, collector_env, "spans")
    agent.proc.wait_ready()
    broker.stop()
    loader = Loader(agent.grpc_port)
    for _ in range(10):
        loader.send(traces=20, spans_per_trace=5)
    loader.close()
    assert len(list((agent.storage).rglob("*.batch"))) > 0
    agent.proc.proc.kill()  # SIGKILL: no shutdown, no flush
    agent.proc.proc.wait()
    agent.restart()
    agent.proc.wait_ready()
    broker.start()
    create_topic_sync(broker.address, "spans", 4)
    seen = topic_spans(broker.address, "spans", len(loader.acked))
    assert seen == loader.acked
    wait_for(lambda: not list(agent.storage.rglob("*.batch")), timeout=30, interval=0.2)


def sampler_holding_everything(tmp_path: Path, broker: Broker, env: dict[str, str], requests: int,
                               **sampler_options: str) -> tuple[Sampler, Loader]:
    """An agent and a sampler on a 4-partition topic; ``requests`` requests of 100 spans sent through the
    agent and taken by the sampler, which still holds them all (``sampler_options`` make it hold them)
    past a commit interval, with nothing exported yet."""
    create_topic_sync(broker.address, "spans", 4)
    agent = Agent(tmp_path / "agent", broker, env, "spans")
    sampler = Sampler(tmp_path / "sampler", broker, env, "spans", **sampler_options)
    agent.proc.wait_ready()
    sampler.proc.wait_ready()
    loader = Loader(agent.grpc_port)
    for _ in range(requests):
        loader.send(traces=20, spans_per_trace=5)
    loader.close()
    total = len(loader.acked)
    wait_for(lambda: sampler.proc.metric("otelcol_receiver_accepted_spans_total", receiver="kafka") >= total,
             timeout=60, interval=0.2)
    time.sleep(2.5)  # more than the commit interval: a wrong commit would have happened by now
    assert sampler.spans() == []
    return sampler, loader


def test_sampler_killed_mid_stream_its_traces_are_exported_after_restart(
        tmp_path: Path, broker: Broker, collector_env: dict[str, str]) -> None:
    # A batch processor that holds everything for a minute: the records' offsets must not be committed.
    sampler, loader = sampler_holding_everything(tmp_path, broker, collector_env, 10, batch_timeout="60s")
    sampler.proc.proc.kill()
    sampler.proc.proc.wait()
    restarted = Sampler(tmp_path / "sampler2", broker, collector_env, "spans")
    restarted.proc.wait_ready()
    wait_for(lambda: set(restarted.spans()) >= loader.acked, timeout=90, interval=0.5)


def test_sampler_stopped_gracefully_commits_what_it_exported_while_draining(
        tmp_path: Path, broker: Broker, collector_env: dict[str, str]) -> None:
    """SIGTERM while every trace waits for its decision: the trace buffer decides and exports them as it
    shuts down, and the Kafka receiver commits their offsets after that drain, so a sampler started
    next in the same group has nothing to read again."""
    sampler, loader = sampler_holding_everything(tmp_path, broker, collector_env, 5, decision_wait="60s")
    assert sampler.proc.terminate() == 0
    assert set(sampler.spans()) == loader.acked  # decided and exported while shutting down
    again = Sampler(tmp_path / "sampler2", broker, collector_env, "spans", decision_wait="1s")
    again.proc.wait_ready()
    # Once the new member has the partitions, it fetches from the committed offsets (here: the end).
    wait_for(lambda: "assigned" in again.proc.stderr, timeout=60, interval=0.5)
    time.sleep(3)
    assert again.proc.metric("otelcol_receiver_accepted_spans_total", receiver="kafka") == 0
    assert again.spans() == []
