"""``GET /debug/traces/{trace_id}``: the recent-decisions ring of a running service, over HTTP, for kept,
dropped, late, buffered and never-seen traces (with the root cause and alert group the stages before
tail_sampling found); off without ``service.telemetry.debug``; bounded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import ComponentID, Kind, Settings, SpanBatch, Telemetry
from collector.config import decode
from collector.config.service import build_config
from collector.registry import Registry
from collector.service import Service
from collector.trace_buffer import TraceBuffer
from pipelines.root_cause import RootCauseProcessor
from pipelines.root_cause.config import Config as RootCauseConfig
from pipelines.tail_sampling import TailSamplingProcessor
from pipelines.tail_sampling.config import Config
from pipelines.tail_sampling.decisions import MAX_PATH, DecisionRing, parse_trace_id
from tests.pipelines.tail_sampling.support import span, trace

ERROR = Status.STATUS_CODE_ERROR


def raw(debug: bool, recent: int = 100) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {
            "root_cause": {"annotate": True},
            "alert_routing": {"route": {"receiver": "hook", "group_by": ["team", "service"], "group_wait": "1h"},
                              "receivers": [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/"}}]},
            "tail_sampling": {"decision_wait": "300ms", "recent_decisions": recent,
                              "decision_cache": {"sampled_cache_size": 100, "non_sampled_cache_size": 100},
                              "policies": [{"name": "errors", "type": "status_code",
                                            "status_code": {"status_codes": ["ERROR"]}}]},
        },
        "exporters": {"debug": {}},
        "service": {"telemetry": {"debug": debug, "metrics": {"address": "127.0.0.1:0"}},
                    "pipelines": {"traces": {"receivers": ["otlp"],
                                             "processors": ["root_cause", "alert_routing", "tail_sampling"],
                                             "exporters": ["debug"]}}},
    }


def request(service: str, *spans: Span) -> SpanBatch:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    rs.scope_spans.add().spans.extend(spans)
    return SpanBatch.from_bytes(req.SerializeToString())


def sp(trace_id: bytes, span_id: int, parent: int = 0, error: bool = False, name: str = "op") -> Span:
    return Span(trace_id=trace_id, span_id=span_id.to_bytes(8, "big"), name=name,
                parent_span_id=parent.to_bytes(8, "big") if parent else b"",
                start_time_unix_nano=1_000, end_time_unix_nano=2_000,
                status=Status(code=ERROR if error else Status.STATUS_CODE_UNSET))


async def wait_until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


async def get(port: int, tail: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/debug/traces/{tail}") as r:
        return r.status, await r.json(content_type=None) if r.content_type == "application/json" else {}


async def test_lookup_answers_for_kept_dropped_late_buffered_and_never_seen_traces() -> None:
    service = Service(build_config(raw(debug=True), Registry.default(plugins=False)))
    service.build()
    await service.start()
    try:
        buffer = next(b.component for b in service.graph.processors[0] if isinstance(b.component, TraceBuffer))
        port = service.metrics_port
        assert port is not None
        kept, dropped, pending = (bytes([n]) * 16 for n in (1, 2, 3))
        await buffer.consume_traces(request("frontend", sp(kept, 1, error=True, name="GET /cart"),
                                            sp(kept, 2, parent=1, error=True, name="charge")))
        await buffer.consume_traces(request("frontend", sp(dropped, 3, name="GET /")))
        ring = service.host.pipeline_processors["traces"][ComponentID("tail_sampling")].ring
        await wait_until(lambda: ring.get(kept) is not None and ring.get(dropped) is not None)
        # late spans: one released by the sampled cache, one dropped by the not-sampled cache
        await buffer.consume_traces(request("payment", sp(kept, 4, parent=2)))
        await buffer.consume_traces(request("frontend", sp(dropped, 5, parent=3)))
        await buffer.consume_traces(request("frontend", sp(pending, 6)))

        status, body = await get(port, pending.hex())
        assert status == 200 and body["state"] == "buffered" and body["buffered_spans"] == 1
        assert "decision" not in body

        status, body = await get(port, kept.hex())
        assert status == 200, body
        assert body["seen"] and body["state"] == "decided" and body["kept"] and body["decision"] == "sampled"
        assert body["policy"] == "errors" and body["spans"] == 2 and body["probability"] == 1.0
        assert body["late_spans"] == {"kept": 1, "dropped": 0}
        assert body["root_cause"]["service"] == "frontend" and body["root_cause"]["span_name"] == "charge"
        assert body["root_cause"]["path"] == ["frontend:GET /cart", "frontend:charge"]
        assert body["alert_groups"] == ['{}:{service="frontend",team="sre"}']  # the root route's group

        status, body = await get(port, dropped.hex().upper())
        assert status == 200
        assert not body["kept"] and body["decision"] == "not_sampled" and body["policy"] == ""
        assert body["late_spans"] == {"kept": 0, "dropped": 1} and body["root_cause"] is None

        status, body = await get(port, (b"\x09" * 16).hex())
        assert (status, body) == (404, {"trace_id": "09" * 16, "seen": False})
        for bad in ("xyz", "0" * 32, "g" * 32, "ab" * 17):
            status, body = await get(port, bad)
            assert status == 400 and "trace id" in body["error"], bad
    finally:
        await service.shutdown()


async def test_lookup_is_not_served_without_debug() -> None:
    service = Service(build_config(raw(debug=False), Registry.default(plugins=False)))
    service.build()
    await service.start()
    try:
        port = service.metrics_port
        assert port is not None
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{port}/debug/traces/{'01' * 16}") as r:
            assert r.status == 404 and "/metrics" in await r.text()
    finally:
        await service.shutdown()


def test_the_ring_is_bounded_and_counts_evictions() -> None:
    telemetry = Telemetry()
    settings = Settings(ComponentID("tail_sampling"), Kind.PROCESSOR, telemetry, logging.getLogger("t"))
    cfg = decode(Config, {"recent_decisions": 3, "policies": [
        {"name": "all", "type": "always_sample"}]})
    proc = TailSamplingProcessor(settings, cfg, None)
    traces = [trace(span(trace_id=bytes([i]) * 16, status=ERROR)) for i in range(1, 8)]
    proc.process_traces(traces)
    assert len(proc.ring) == 3
    assert [proc.lookup(t.trace_id) is not None for t in traces] == [False] * 4 + [True] * 3
    sample = telemetry.registry.get_sample_value
    assert sample("tracetriage_tail_sampling_recent_decisions", {"processor": "tail_sampling"}) == 3
    assert sample("tracetriage_tail_sampling_recent_decisions_capacity", {"processor": "tail_sampling"}) == 3
    assert sample("tracetriage_tail_sampling_recent_decisions_evicted_total", {"processor": "tail_sampling"}) == 4
    # a long root-cause path is cut, so an entry's size does not grow with the trace
    deep = bytes([0x42]) * 16
    chain = [span(trace_id=deep, span_id=(i + 1).to_bytes(8, "big"), parent=i.to_bytes(8, "big") if i else b"",
                  status=ERROR) for i in range(60)]
    rc = RootCauseProcessor(settings, decode(RootCauseConfig, {}))
    ring = DecisionRing(2)
    t = trace(*chain)
    rc.process_traces([t])
    ring.record(t, "sampled", True, "all", "", 1.0, None, False)
    found = ring.lookup(deep)
    assert found is not None and len(found["root_cause"]["path"]) == MAX_PATH
    assert found["root_cause"]["depth"] == 59
    assert ring.lookup(bytes(16)) is None
    assert parse_trace_id("AB" * 16) == bytes([0xAB]) * 16
