"""The servicegraph processor in one process: the compiled path (numba) and the protobuf path give the same
series for the same spans, a full store drops and counts, and config errors name the key."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans

from collector import ComponentID, Kind, Settings, SpanBatch, Telemetry
from collector.config.schema import ConfigError, decode
from pipelines.exposition.columns import SpanWalk
from pipelines.servicegraph import Config, ServiceGraphProcessor, processor
from pipelines.servicegraph.processor import _FastStore
from tests.pipelines.servicegraph.shop import shop_traces
from tests.pipelines.spanmetrics.test_processor import Sink

compiled = pytest.mark.skipif(not SpanWalk.load(), reason="numba is not installed")


def make(raw: dict[str, Any] | None = None, fast: bool = True) -> ServiceGraphProcessor:
    settings = Settings(ComponentID("servicegraph"), Kind.PROCESSOR, Telemetry(), logging.getLogger("t"))
    proc = ServiceGraphProcessor(settings, decode(Config, raw or {}), Sink())
    if not fast:
        proc._fast = None  # the protobuf path, as without numba
    return proc


def feed(proc: ServiceGraphProcessor, data: bytes, spans: int, now: float) -> None:
    columns = proc._walk.columns(data, spans) if proc._fast is not None else None
    if columns is not None:
        proc.record_columns(columns, now)
    else:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
        proc.record(ExportTraceServiceRequest.FromString(data), now)


def series(proc: ServiceGraphProcessor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in proc.families() for s in f.samples}


async def test_its_cpu_time_is_counted() -> None:
    """``tracetriage_span_stage_cpu_seconds_total``: the processor's own CPU time, batches and expiry."""
    proc = make()

    def cpu() -> float:
        text = proc._settings.telemetry.exposition().decode()
        return float(text.split('tracetriage_span_stage_cpu_seconds_total{processor="servicegraph"} ')[1].split()[0])

    assert cpu() == 0.0
    data = encode_spans(shop_traces(20, failing=(2,))).SerializeToString()
    await proc.consume_traces(SpanBatch.from_bytes(data))
    assert cpu() > 0.0


@compiled
@pytest.mark.parametrize("extra_label", [False, True])
def test_compiled_and_protobuf_paths_agree(extra_label: bool) -> None:
    spans = shop_traces(20, failing=(2, 5, 11))
    # Both sides of a call in different requests (as from different agents), some in the same one.
    by_service: dict[str, list[Any]] = {}
    for s in spans:
        by_service.setdefault(str(s.resource.attributes["service.name"]), []).append(s)
    requests = [encode_spans(part).SerializeToString() for part in by_service.values()]
    requests.append(encode_spans(spans[:9]).SerializeToString())
    raw = {"virtual_node_extra_label": extra_label}
    fast, slow = make(raw), make(raw, fast=False)
    for proc in (fast, slow):
        for data in requests:
            feed(proc, data, len(spans), now=100.0)
        assert proc.waiting_edges > 0
        proc.expire(now=100.0 + 60)
        assert proc.waiting_edges == 0
    got, want = series(fast), series(slow)
    assert {k for k in got if k[0].endswith("_sum")} == {k for k in want if k[0].endswith("_sum")}
    assert {k: v for k, v in got.items() if not k[0].endswith("_sum")} == \
        {k: v for k, v in want.items() if not k[0].endswith("_sum")}
    for k, v in want.items():
        if k[0].endswith("_sum"):
            assert got[k] == pytest.approx(v)
    assert any(n == "traces_service_graph_unpaired_spans_total" for n, _ in got)
    assert any(dict(labels).get("connection_type") == "virtual_node" for _, labels in got)


def assert_same_series(got: dict[Any, float], want: dict[Any, float]) -> None:
    assert {k: v for k, v in got.items() if not k[0].endswith("_sum")} == \
        {k: v for k, v in want.items() if not k[0].endswith("_sum")}
    assert {k for k in got if k[0].endswith("_sum")} == {k for k in want if k[0].endswith("_sum")}
    for k, v in want.items():
        if k[0].endswith("_sum"):
            assert got[k] == pytest.approx(v)


@compiled
def test_a_growing_store_and_its_expiry_queue_agree_with_protobuf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many more edges than the table's first size, expired along the way: the compiled table grows, its
    expiry queue wraps (and drops keys paired meanwhile), completed edges held for counting overflow their
    room (counted along the way, or at once when more come in one request), and the series are those of the
    protobuf path."""
    monkeypatch.setattr(_FastStore, "INITIAL_ROWS", 256)  # (a smaller first table: it grows in this test)
    monkeypatch.setattr(processor, "HOLD_EDGES", 40)
    spans = shop_traces(500, failing=range(0, 500, 7))
    traces: dict[int, list[Any]] = {}
    for s in spans:
        traces.setdefault(s.context.trace_id, []).append(s)
    ordered = list(traces.values())
    chunks = [[s for trace in ordered[i:i + 50] for s in trace] for i in range(0, len(ordered), 50)]
    raw = {"store": {"ttl": "3s", "max_items": 600}}
    fast, slow = make(raw), make(raw, fast=False)
    assert fast._fast is not None and len(fast._fast.qi) == 2048  # fewer than the keys queued in all
    for proc in (fast, slow):
        for t, chunk in enumerate(chunks):
            by_service: dict[str, list[Any]] = {}
            for s in chunk:
                by_service.setdefault(str(s.resource.attributes["service.name"]), []).append(s)
            for part in by_service.values():  # each side of a call in another request, the callers last
                feed(proc, encode_spans(part).SerializeToString(), len(part), now=100.0 + t)
            proc.expire(now=100.0 + t)
        proc.expire(now=100.0 + len(chunks) + 60)
        assert proc.waiting_edges == 0
    assert len(fast._fast.ti) > fast._fast.INITIAL_ROWS
    got, want = series(fast), series(slow)
    assert_same_series(got, want)
    assert any(n == "traces_service_graph_unpaired_spans_total" for n, _ in got)
    assert sum(v for (n, _), v in got.items() if n == "traces_service_graph_request_total") > 1000


@pytest.mark.parametrize("fast", [pytest.param(True, marks=compiled), False])
def test_a_full_store_drops_and_counts(fast: bool) -> None:
    proc = make({"store": {"max_items": 3}}, fast=fast)
    spans = [s for s in shop_traces(5) if s.name == "POST /legacy"]  # five lone client spans
    feed(proc, encode_spans(spans).SerializeToString(), len(spans), now=1.0)
    assert proc.waiting_edges == 3
    dropped = {dict(labels)["client"]: v for (n, labels), v in series(proc).items()
               if n == "traces_service_graph_dropped_spans_total"}
    assert dropped == {"frontend": 2}


@pytest.mark.parametrize(("raw", "message"), [
    ({"latency_histogram_buckets": ["2s", "1s"]}, "latency_histogram_buckets: must be non-negative, increasing"),
    ({"store": {"ttl": "0s"}}, "store.ttl"),
    ({"store": {"max_items": 0}}, "store.max_items"),
    ({"dimensions": [""]}, "dimensions[0]: must not be empty"),
])
def test_bad_config_names_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, raw)
    assert message in str(info.value)
