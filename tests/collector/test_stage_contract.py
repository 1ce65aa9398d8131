"""The stage contract: the service wires each processor by the :class:`Capabilities` it declares.

A trace-level stage gets the pipeline's trace buffer (with the settings of the stage that defines them), the
wire walk looks for ``error`` attributes only when a stage reads them, fan-out copies a batch only for a
consumer that mutates, and a processor that lacks what its capabilities promise is refused at build time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from collector import Factory, FanOutConsumer, Kind, Settings, Telemetry, TracesConsumer
from collector.component import TraceStage, buffer_owner
from collector.config.service import build_config
from collector.consumer import Capabilities, TraceBufferSettings
from collector.errors import ComponentStartError
from collector.model import Trace
from collector.registry import Registry
from collector.service import Service
from collector.trace_buffer import TraceBuffer
from tests.collector.test_batch_acks import Sink, make_batch


def raw_config(processors: dict[str, Any], order: list[str]) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "processors": processors,
        "exporters": {"debug": {}},
        "service": {"telemetry": {"metrics": {"address": ""}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": order, "exporters": ["debug"]}}},
    }


def built(raw: dict[str, Any], registry: Registry | None = None) -> Service:
    service = Service(build_config(raw, registry or Registry.default(plugins=False)))
    service.build()
    return service


def buffers(service: Service) -> list[TraceBuffer]:
    return [b.component for b in service.graph.processors[0] if isinstance(b.component, TraceBuffer)]


TAIL = {"decision_wait": "7s", "policies": [{"name": "errors", "type": "status_code",
                                             "status_code": {"status_codes": ["ERROR"]}}]}


def test_trace_stages_share_one_buffer_set_by_the_stage_that_defines_it() -> None:
    service = built(raw_config({"root_cause": {"decision_wait": "2s"}, "tail_sampling": TAIL},
                               ["root_cause", "tail_sampling"]))
    (buffer,) = buffers(service)
    assert buffer.settings.decision_wait == 7.0  # tail_sampling defines_buffer, though root_cause comes first
    # root_cause reads the error attribute
    assert (service.split_options.error_hints, service.split_options.error_attribute) == (True, True)


def test_without_a_stage_reading_error_attributes_the_walk_skips_them() -> None:
    service = built(raw_config({"root_cause": {"decision_wait": "2s"}, "tail_sampling": TAIL}, ["tail_sampling"]))
    assert len(buffers(service)) == 1
    assert (service.split_options.error_hints, service.split_options.error_attribute) == (True, False)


def test_span_level_processors_get_no_buffer() -> None:
    service = built(raw_config({"batch": {}}, ["batch"]))
    assert buffers(service) == []
    assert (service.split_options.error_hints, service.split_options.error_attribute) == (False, False)


def test_first_stage_sets_the_buffer_when_none_defines_it() -> None:
    service = built(raw_config({"root_cause": {"decision_wait": "2s"}, "alert_routing": {
        "route": {"receiver": "hook"}, "receivers": [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/"}}],
        "decision_wait": "3s"}}, ["root_cause", "alert_routing"]))
    (buffer,) = buffers(service)
    assert buffer.settings.decision_wait == 2.0


class _Stage:
    def __init__(self, caps: Capabilities, wait: float = 1.0) -> None:
        self.caps = caps
        self.buffer_settings = TraceBufferSettings(decision_wait=wait)

    def capabilities(self) -> Capabilities:
        return self.caps

    def process_traces(self, traces: list[Trace]) -> list[Trace]:
        return traces

    async def start(self, host: Any) -> None:
        return None

    async def shutdown(self) -> None:
        return None


def test_buffer_owner() -> None:
    first, second = _Stage(Capabilities(trace_level=True), 1.0), _Stage(Capabilities(trace_level=True), 2.0)
    definer = _Stage(Capabilities(trace_level=True, defines_buffer=True), 3.0)
    assert buffer_owner([("a", first), ("b", second)]) == ("a", first)
    assert buffer_owner([("a", first), ("b", definer), ("c", second)]) == ("b", definer)
    assert isinstance(definer, TraceStage)


class _HalfStage:
    """Says it is a trace stage, but has no process_traces."""

    def capabilities(self) -> Capabilities:
        return Capabilities(trace_level=True)

    async def start(self, host: Any) -> None:
        return None

    async def shutdown(self) -> None:
        return None


@dataclass(frozen=True)
class _Empty:
    pass


def _factory(type_: str, make: Any) -> Factory:
    return Factory(type_, Kind.PROCESSOR, _Empty, lambda settings, config, next_consumer: make())


def test_a_processor_lacking_what_its_capabilities_promise_is_refused_at_build() -> None:
    reg = Registry.default(plugins=False)
    reg.add(_factory("halfstage", _HalfStage))
    reg.add(_factory("nothing", object))
    with pytest.raises(ComponentStartError, match=r"processor halfstage in pipeline traces.*declares trace_level"):
        built(raw_config({"halfstage": {}}, ["halfstage"]), reg)
    with pytest.raises(ComponentStartError, match=r"processor nothing in pipeline traces.*is not a processor"):
        built(raw_config({"nothing": {}}, ["nothing"]), reg)


async def test_fan_out_copies_only_for_consumers_that_mutate() -> None:
    reader, writer = Sink(), Sink(mutates=True)
    batch = make_batch(2)
    consumers: list[TracesConsumer] = [reader, writer]
    await FanOutConsumer(consumers).consume_traces(batch)
    (read,), (written,) = reader.got, writer.got
    written.request.resource_spans[0].scope_spans[0].spans[0].name = "changed"
    assert read.request.resource_spans[0].scope_spans[0].spans[0].name == "s0"
    assert read.request is batch.request  # a view: same decoded message, no copy


def test_processors_declare_capabilities() -> None:
    reg = Registry.default(plugins=False)
    raw = raw_config({"root_cause": {"annotate": False}, "tail_sampling": TAIL, "batch": {}, "memory_limiter": {
        "check_interval": "1s", "limit_mib": 1 << 20}}, ["memory_limiter", "batch", "root_cause", "tail_sampling"])
    config = build_config(raw, reg)
    declared: dict[str, Capabilities] = {}
    for cid, cc in config.processors.items():
        settings = Settings(cid, Kind.PROCESSOR, Telemetry(), logging.getLogger("t"))
        declared[str(cid)] = cc.factory.create(settings, cc.config, Sink()).capabilities()
    assert declared == {
        "root_cause": Capabilities(trace_level=True, reads_error_attribute=True),
        "tail_sampling": Capabilities(trace_level=True, defines_buffer=True),
        "batch": Capabilities(),
        "memory_limiter": Capabilities(),
    }
