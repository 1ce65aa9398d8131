"""The circuit breaker: its states on a clock of the test's own, then the otlp and otlphttp exporters behind it
against real gRPC and HTTP backends that fail and then recover."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from prometheus_client import Counter, Gauge

from collector.component import Host, Settings
from collector.config import ConfigError, decode
from collector.errors import PermanentError, RefusedError
from collector.exporters import otlp, otlphttp
from collector.exporters.circuit_breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from collector.exporters.helper import QueueConfig, QueuedRetrySender, RetryConfig
from collector.telemetry import Telemetry
from tests.collector.exporters import FAST_RETRY, make_batch, make_settings, metric
from tests.collector.exporters.test_otlp import grpc_server
from tests.collector.exporters.test_otlphttp import http_server

UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "backend restarting", None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: Any = None, **config: Any) -> tuple[CircuitBreaker, Gauge, Counter]:
    tel = Telemetry()
    gauge = tel.gauge("state", "state", ("exporter",))
    transitions = tel.counter("transitions", "transitions", ("exporter", "to"))
    breaker = CircuitBreaker(decode(CircuitBreakerConfig, config), what="test", logger=logging.getLogger("test"),
                             state_gauge=gauge.labels("x"), transitions=lambda to: transitions.labels("x", to),
                             **({"clock": clock} if clock is not None else {}))
    return breaker, gauge, transitions


def transitions_to(settings: Settings, to: str) -> float:
    value = settings.telemetry.registry.get_sample_value(
        "tracetriage_exporter_circuit_transitions_total", {"exporter": str(settings.id), "to": to})
    return value or 0.0


def test_states_on_a_clock() -> None:
    clock = Clock()
    breaker, gauge, transitions = make_breaker(clock, failure_threshold=3, open_duration="10s",
                                               half_open_max_requests=2)
    state = gauge.labels("x")
    # closed: a success resets the count of failures in a row
    for ok in (False, False, True, False, False):
        permit = breaker.try_acquire()
        assert permit is not None
        breaker.record(permit, ok)
    assert breaker.state is CircuitState.CLOSED and state._value.get() == 0
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.record(permit, False)  # third in a row
    assert breaker.state is CircuitState.OPEN and state._value.get() == 1
    assert breaker.try_acquire() is None  # open: nothing goes through
    clock.now += 9.9
    assert breaker.try_acquire() is None
    clock.now += 0.1
    # half-open: at most half_open_max_requests probes at a time
    first, second = breaker.try_acquire(), breaker.try_acquire()
    assert first is not None and second is not None and first.probe
    assert breaker.try_acquire() is None
    assert breaker.state is CircuitState.HALF_OPEN and state._value.get() == 2
    breaker.record(first, False)  # a failed probe opens again
    assert breaker.state is CircuitState.OPEN
    breaker.record(second, True)  # a stale outcome changes nothing
    assert breaker.state is CircuitState.OPEN
    clock.now += 10
    a, b = breaker.try_acquire(), breaker.try_acquire()
    assert a is not None and b is not None
    breaker.release(b)  # an abandoned probe frees its slot
    c = breaker.try_acquire()
    assert c is not None
    breaker.record(a, True)
    assert breaker.state is CircuitState.HALF_OPEN  # one success of the two needed
    breaker.record(c, True)
    assert breaker.state is CircuitState.CLOSED and state._value.get() == 0
    counts = {to: transitions.labels("x", to)._value.get() for to in ("open", "half_open", "closed")}
    assert counts == {"open": 2, "half_open": 2, "closed": 1}


async def test_acquire_waits_out_the_open_duration() -> None:
    breaker, _, _ = make_breaker(failure_threshold=1, open_duration="50ms")
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.record(permit, False)
    assert breaker.is_open
    loop = asyncio.get_running_loop()
    started = loop.time()
    probe, waited = await breaker.acquire()
    assert probe.probe and waited >= 0.04 and loop.time() - started >= 0.04
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record(probe, True)
    assert breaker.state is CircuitState.CLOSED


def test_config_defaults_and_validation() -> None:
    cfg = decode(CircuitBreakerConfig, {})
    assert (cfg.enabled, cfg.failure_threshold, cfg.open_duration, cfg.half_open_max_requests) == (True, 5, 5.0, 1)
    with pytest.raises(ConfigError) as info:
        decode(otlp.OTLPConfig, {"endpoint": "h:4317", "circuit_breaker": {
            "failure_threshold": 0, "open_duration": "0s", "half_open_max_requests": 0, "reset": 1}},
            "exporters.otlp")
    text = str(info.value)
    assert "exporters.otlp.circuit_breaker.failure_threshold" in text
    assert "exporters.otlp.circuit_breaker.open_duration" in text
    assert "exporters.otlp.circuit_breaker.half_open_max_requests" in text
    assert "exporters.otlp.circuit_breaker.reset" in text


async def test_permanent_errors_are_a_sign_of_life() -> None:
    """A backend that answers 'bad data' is up: the circuit stays closed."""
    settings = make_settings("otlp")
    calls = 0

    async def send(batch: object) -> int | None:
        nonlocal calls
        calls += 1
        raise PermanentError("bad data")

    qrs = QueuedRetrySender(settings, send, queue=QueueConfig(num_consumers=1, queue_size=20),  # type: ignore[arg-type]
                            retry=RetryConfig(initial_interval=0.01), timeout=1.0,
                            circuit_breaker=CircuitBreakerConfig(failure_threshold=2))
    await qrs.start()
    for i in range(6):
        await qrs.consume_traces(make_batch(1, seed=i + 1))
    await qrs.drain()
    assert calls == 6
    assert qrs.breaker is not None and qrs.breaker.state is CircuitState.CLOSED
    assert transitions_to(settings, "open") == 0


async def test_grpc_backend_down_then_up_nothing_lost() -> None:
    """Open after failure_threshold failures, no attempt while open (the queue fills instead), a single
    half-open probe that fails and reopens, a probe that succeeds and closes, every batch delivered once."""
    async with grpc_server() as (service, port):
        threshold, open_for = 3, 0.5
        service.script = [UNAVAILABLE] * (threshold + 1)  # the first probe fails too
        settings = make_settings("otlp/cb")
        exporter = otlp.factory.create(settings, decode(otlp.OTLPConfig, {
            "endpoint": f"127.0.0.1:{port}", "tls": {"insecure": True},
            # Shorter than the two open periods: waiting out the circuit is not retry time.
            "retry_on_failure": dict(FAST_RETRY, max_elapsed_time="700ms"),
            "sending_queue": {"num_consumers": 1, "queue_size": 50},
            "circuit_breaker": {"failure_threshold": threshold, "open_duration": f"{open_for}s"},
        }))
        await exporter.start(Host())
        breaker = exporter._sender.breaker
        assert breaker is not None
        first = [make_batch(2, seed=i + 1) for i in range(3)]
        for b in first:
            await exporter.consume_traces(b)
        while metric(settings, "tracetriage_exporter_circuit_state") != 1:
            await asyncio.sleep(0.005)
        opened_at = breaker.opened_at
        assert len(service.attempts) == threshold
        # Open: batches go into the queue at once, nothing reaches the backend.
        later = [make_batch(2, seed=i + 10) for i in range(5)]
        for b in later:
            await exporter.consume_traces(b)
        assert metric(settings, "otelcol_exporter_queue_size") >= 5
        assert len(service.attempts) == threshold
        async with asyncio.timeout(30):
            while len(service.received) < len(first + later):  # probes until the backend takes everything
                await asyncio.sleep(0.01)
        await exporter.shutdown()
    times = [t for t, _ in service.attempts]
    # The first probe came no sooner than open_duration after the circuit opened, the second no sooner than
    # open_duration after the first probe reopened it.
    assert times[threshold] - opened_at >= open_for * 0.95
    assert times[threshold + 1] - times[threshold] >= open_for * 0.95
    assert sorted(service.received) == sorted(b.to_bytes() for b in first + later)  # each exactly once
    assert metric(settings, "otelcol_exporter_sent_spans") == 16
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 0
    assert metric(settings, "tracetriage_exporter_circuit_state") == 0
    assert (transitions_to(settings, "open"), transitions_to(settings, "half_open"),
            transitions_to(settings, "closed")) == (2, 2, 1)


async def test_http_backend_down_then_up_with_several_consumers() -> None:
    async with http_server() as (server, port):
        server.always = (503, {}, b"restarting")
        settings = make_settings("otlphttp/cb")
        exporter = otlphttp.factory.create(settings, decode(otlphttp.OTLPHTTPConfig, {
            "endpoint": f"http://127.0.0.1:{port}",
            "retry_on_failure": FAST_RETRY,
            "sending_queue": {"num_consumers": 4, "queue_size": 50},
            "circuit_breaker": {"failure_threshold": 4, "open_duration": "300ms"},
        }))
        await exporter.start(Host())
        breaker = exporter._sender.breaker
        assert breaker is not None
        batches = [make_batch(3, seed=i + 1) for i in range(12)]
        for b in batches[:6]:
            await exporter.consume_traces(b)
        while not breaker.is_open:
            await asyncio.sleep(0.005)
        opened_at = breaker.opened_at
        for b in batches[6:]:
            await exporter.consume_traces(b)  # taken while open
        while breaker.state is not CircuitState.HALF_OPEN:
            await asyncio.sleep(0.005)
        server.always = None  # the backend is back
        failed_attempts = len(server.attempts)
        async with asyncio.timeout(30):
            while metric(settings, "otelcol_exporter_sent_spans") < 36:
                await asyncio.sleep(0.01)
        await exporter.shutdown()
    # While open no attempt starts; only attempts admitted before it opened (one per other consumer) may still
    # arrive at the backend.
    assert len([t for t, *_ in server.attempts if opened_at < t < opened_at + 0.3 * 0.95]) <= 3
    assert sorted(server.delivered[failed_attempts:]) == sorted(b.to_bytes() for b in batches)  # each once
    assert metric(settings, "otelcol_exporter_sent_spans") == 36
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 0
    assert metric(settings, "tracetriage_exporter_circuit_state") == 0
    assert transitions_to(settings, "closed") >= 1


async def test_queue_disabled_fails_fast_while_open() -> None:
    async with http_server() as (server, port):
        server.always = (503, {}, b"")
        settings = make_settings("otlphttp/sync")
        exporter = otlphttp.factory.create(settings, decode(otlphttp.OTLPHTTPConfig, {
            "endpoint": f"http://127.0.0.1:{port}",
            "retry_on_failure": {"enabled": False},
            "sending_queue": {"enabled": False},
            "circuit_breaker": {"failure_threshold": 2, "open_duration": "60s"},
        }))
        await exporter.start(Host())
        for i in range(2):
            with pytest.raises(Exception, match="503"):
                await exporter.consume_traces(make_batch(1, seed=i + 1))
        assert len(server.attempts) == 2
        for i in range(5):
            with pytest.raises(RefusedError, match="circuit open") as info:
                await exporter.consume_traces(make_batch(1, seed=i + 5))
            assert info.value.retriable
        assert len(server.attempts) == 2  # no attempt reached the backend
        assert metric(settings, "otelcol_exporter_enqueue_failed_spans") == 5
        await exporter.shutdown()


async def test_shutdown_with_a_memory_queue_probes_at_once() -> None:
    """In memory, what waits is lost at the deadline: shutdown probes now instead of after open_duration."""
    async with grpc_server() as (service, port):
        service.always = UNAVAILABLE
        settings = make_settings("otlp/mem")
        exporter = otlp.factory.create(settings, decode(otlp.OTLPConfig, {
            "endpoint": f"127.0.0.1:{port}", "tls": {"insecure": True}, "retry_on_failure": FAST_RETRY,
            "sending_queue": {"num_consumers": 1, "queue_size": 10},
            "circuit_breaker": {"failure_threshold": 2, "open_duration": "1h"},
        }))
        await exporter.start(Host())
        batches = [make_batch(2, seed=i + 1) for i in range(3)]
        for b in batches:
            await exporter.consume_traces(b)
        while metric(settings, "tracetriage_exporter_circuit_state") != 1:
            await asyncio.sleep(0.005)
        service.always = None  # back, but the circuit would stay open for an hour
        async with asyncio.timeout(30):
            await exporter.shutdown()
    assert sorted(service.received) == sorted(b.to_bytes() for b in batches)
    assert metric(settings, "otelcol_exporter_sent_spans") == 6
    assert transitions_to(settings, "closed") == 1
