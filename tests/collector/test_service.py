"""The service builds its receivers' split options from its own pipelines: two services in one process, one
whose trace stages read the ``error`` attribute (root_cause) and one whose stage does not (tail_sampling),
each split the same request their own way."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from collector.component import ComponentID, Host, Kind
from collector.config.service import build_config
from collector.registry import Registry
from collector.service import Service
from collector.trace_buffer import TraceBuffer
from collector.wire import SplitOptions

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
ERROR_STATUS, ERROR_ATTRIBUTE, CLEAN = (n.to_bytes(16, "big") for n in (1, 2, 3))


def config(processors: dict[str, Any]) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "processors": processors,
        "exporters": {"debug": {}},
        "service": {
            "telemetry": {"metrics": {"address": ""}},
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": list(processors),
                                     "exporters": ["debug"]}},
        },
    }


def request() -> bytes:
    """Three traces of one span: one with an ERROR status, one with an ``error`` attribute, one clean."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i, tid in enumerate((ERROR_STATUS, ERROR_ATTRIBUTE, CLEAN)):
        s = spans.add(trace_id=tid, span_id=(i + 1).to_bytes(8, "big"), name="op", start_time_unix_nano=1,
                      end_time_unix_nano=2)
        if tid == ERROR_STATUS:
            s.status.code = Status.STATUS_CODE_ERROR
        elif tid == ERROR_ATTRIBUTE:
            s.attributes.append(KeyValue(key="error", value=AnyValue(bool_value=True)))
    return req.SerializeToString()


def built(processors: dict[str, Any]) -> Service:
    service = Service(build_config(config(processors), Registry.default(plugins=False)))
    service.build()
    return service


def maybe_error(service: Service) -> dict[bytes, bool]:
    """The wire walk's hint of each trace the service's trace buffer holds."""
    (buffer,) = [b.component for built in service.graph.processors for b in built
                 if isinstance(b.component, TraceBuffer)]
    return {tid: t.maybe_error for tid, t in buffer._pending.items()}


async def test_two_services_split_by_their_own_options() -> None:
    sampling = built({"tail_sampling": {"decision_wait": "60s",
                                        "policies": [{"name": "all", "type": "always_sample"}]}})
    triage = built({"root_cause": {"decision_wait": "60s"}})
    relay = built({"batch": {}})
    assert sampling.split_options == SplitOptions(error_hints=True, error_attribute=False)
    assert triage.split_options == SplitOptions(error_hints=True, error_attribute=True)
    assert relay.split_options == SplitOptions(error_hints=False, error_attribute=False)
    for service in (sampling, triage, relay):  # each receiver got its own service's options
        receiver = service.components[(Kind.RECEIVER, ComponentID("otlp"))]
        assert receiver.settings.split_options is service.split_options
    await sampling.start()
    await triage.start()
    try:
        for service in (sampling, triage, sampling):
            receiver = service.components[(Kind.RECEIVER, ComponentID("otlp"))]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
                call = channel.unary_unary(EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
                await call(request(), timeout=10)
        # Only root_cause reads the ``error`` attribute: tail_sampling's service does not look for it.
        assert maybe_error(sampling) == {ERROR_STATUS: True, ERROR_ATTRIBUTE: False, CLEAN: False}
        assert maybe_error(triage) == {ERROR_STATUS: True, ERROR_ATTRIBUTE: True, CLEAN: False}
    finally:
        await triage.shutdown()
        await sampling.shutdown()


async def test_a_watched_background_task_that_fails_is_fatal_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    host = Host()

    async def fails() -> None:
        raise RuntimeError("boom")

    async def ends() -> None:
        return None

    log = logging.getLogger("tracetriage.test")
    quiet, cancelled = asyncio.create_task(ends()), asyncio.create_task(asyncio.sleep(10))
    for task in (quiet, cancelled):
        host.watch(task, log, "stage x")
    cancelled.cancel()
    await asyncio.gather(quiet, cancelled, return_exceptions=True)
    assert host.fatal_error is None
    failing = asyncio.create_task(fails(), name="reload")
    host.watch(failing, log, "stage x")
    with caplog.at_level(logging.ERROR):
        await asyncio.gather(failing, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert isinstance(host.fatal_error, RuntimeError)
    assert "stage x: background task reload failed" in caplog.text
    assert await asyncio.wait_for(host.wait_fatal(), 1) is host.fatal_error
