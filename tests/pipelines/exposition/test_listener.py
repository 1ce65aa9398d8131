"""The shared Prometheus listener of the span-derived series: two processors on one endpoint, format
negotiation, a clear start error on a taken port, and closing when the last processor stops."""

from __future__ import annotations

import logging
import socket

import aiohttp
import pytest

from collector import ComponentID, Host, Kind, Settings, Telemetry
from collector.config.schema import decode
from collector.errors import ComponentStartError
from pipelines.servicegraph import Config as GraphConfig
from pipelines.servicegraph import ServiceGraphProcessor
from pipelines.spanmetrics import Config as MetricsConfig
from pipelines.spanmetrics import SpanMetricsProcessor
from tests.conftest import free_port
from tests.pipelines.spanmetrics.test_processor import Sink, request


def settings(name: str) -> Settings:
    return Settings(ComponentID(name), Kind.PROCESSOR, Telemetry(), logging.getLogger(name))


async def test_two_processors_share_one_endpoint_and_negotiate_the_format() -> None:
    port = free_port()
    host = Host()
    metrics = SpanMetricsProcessor(settings("spanmetrics"), decode(MetricsConfig, {
        "endpoint": f"127.0.0.1:{port}", "exemplars": {"enabled": True}}), Sink())
    graph = ServiceGraphProcessor(settings("servicegraph"), decode(GraphConfig, {"endpoint": f"127.0.0.1:{port}"}),
                                  Sink())
    await metrics.start(host)
    await graph.start(host)
    try:
        metrics.record(request(["a"]))
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as r:
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await r.text()
            assert "traces_span_metrics_calls_total{" in text
            assert "# TYPE traces_service_graph_request_total counter" in text
            assert "trace_id" not in text  # the text format carries no exemplars
            async with session.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as r:
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                text = await r.text()
            # No trace buffer after it: every trace is kept, so the exemplar is written at once.
            assert '# {span_id="0000000000000001",trace_id="00000000000000000000000000000001"} 3.0' in text
            assert text.rstrip().endswith("# EOF")
        await metrics.shutdown()
        async with aiohttp.ClientSession() as session, session.get(url) as r:
            text = await r.text()
        assert "traces_span_metrics" not in text and "traces_service_graph_request_total" in text
    finally:
        await metrics.shutdown()
        await graph.shutdown()
    with socket.socket() as s:  # the last one closed the listener
        s.bind(("127.0.0.1", port))


async def test_a_taken_port_is_a_start_error_naming_the_processor() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = SpanMetricsProcessor(settings("spanmetrics/api"), decode(MetricsConfig, {
            "endpoint": f"127.0.0.1:{port}"}), Sink())
        with pytest.raises(ComponentStartError, match=r"processor spanmetrics/api.*endpoint: cannot listen"):
            await proc.start(Host())
        await proc.shutdown()
