"""The spanmetrics processor in one process: label sets, dimensions, units, the cardinality limit under
100,000 span names (series and memory stay bounded), expiration, and config errors."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import Capabilities, ComponentID, Kind, Settings, SpanBatch, Telemetry
from collector.config.schema import ConfigError, decode
from pipelines.exposition.columns import SpanWalk
from pipelines.spanmetrics import Config, SpanMetricsProcessor


class Sink:
    def __init__(self) -> None:
        self.spans = 0

    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def consume_traces(self, batch: SpanBatch) -> None:
        self.spans += batch.span_count
        batch.release()


def make(raw: dict[str, Any] | None = None) -> tuple[SpanMetricsProcessor, Sink, Telemetry]:
    telemetry = Telemetry()
    sink = Sink()
    settings = Settings(ComponentID("spanmetrics"), Kind.PROCESSOR, telemetry, logging.getLogger("t"))
    return SpanMetricsProcessor(settings, decode(Config, raw or {}), sink), sink, telemetry


def request(names: list[str], service: str = "svc", attrs: dict[str, str] | None = None,
            resource: dict[str, str] | None = None, duration_ns: int = 3_000_000, error: bool = False,
            kind: int = Span.SPAN_KIND_SERVER) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in {"service.name": service, **(resource or {})}.items():
        rs.resource.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
    ss = rs.scope_spans.add()
    for i, name in enumerate(names):
        s = ss.spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name=name,
                         kind=kind, start_time_unix_nano=1_000, end_time_unix_nano=1_000 + duration_ns)  # type: ignore[arg-type]
        for k, v in (attrs or {}).items():
            s.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
        if error:
            s.status.code = Status.STATUS_CODE_ERROR
    return req


def samples(proc: SpanMetricsProcessor, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for f in proc.families() for s in f.samples if s.name == name}


async def test_label_sets_and_the_duration_histogram() -> None:
    proc, sink, _ = make({"histogram": {"explicit": {"buckets": ["1ms", "5ms"]}}})
    for req in (request(["a", "a", "b"]), request(["a"], error=True), request(["c"], service="other",
                                                                            kind=Span.SPAN_KIND_CLIENT)):
        await proc.consume_traces(SpanBatch.from_bytes(req.SerializeToString()))
    assert sink.spans == 5
    calls = samples(proc, "traces_span_metrics_calls_total")

    def labels(service: str, name: str, kind: str = "SPAN_KIND_SERVER", status: str = "STATUS_CODE_UNSET"
               ) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({"service_name": service, "span_name": name, "span_kind": kind,
                             "status_code": status}.items()))

    assert calls == {labels("svc", "a"): 2, labels("svc", "b"): 1, labels("svc", "a", status="STATUS_CODE_ERROR"): 1,
                     labels("other", "c", kind="SPAN_KIND_CLIENT"): 1}
    buckets = samples(proc, "traces_span_metrics_duration_milliseconds_bucket")
    a = dict(labels("svc", "a"))
    assert buckets[tuple(sorted({**a, "le": "1.0"}.items()))] == 0  # 3 ms
    assert buckets[tuple(sorted({**a, "le": "5.0"}.items()))] == 2
    assert buckets[tuple(sorted({**a, "le": "+Inf"}.items()))] == 2
    assert samples(proc, "traces_span_metrics_duration_milliseconds_sum")[labels("svc", "a")] == pytest.approx(6.0)


async def test_its_cpu_time_is_counted() -> None:
    """``tracetriage_span_stage_cpu_seconds_total``: the processor's own CPU time, batches and sweeps."""
    proc, _, telemetry = make()

    def cpu() -> float:
        text = telemetry.exposition().decode()
        return float(text.split('tracetriage_span_stage_cpu_seconds_total{processor="spanmetrics"} ')[1].split()[0])

    assert cpu() == 0.0
    await proc.consume_traces(SpanBatch.from_bytes(request([f"op-{i}" for i in range(200)]).SerializeToString()))
    assert cpu() > 0.0


async def test_dimensions_exclusions_unit_and_namespace() -> None:
    proc, _, _ = make({"dimensions": [{"name": "http.method"}, {"name": "region", "default": "none"}],
                       "exclude_dimensions": ["status.code"], "histogram": {"unit": "s"}, "namespace": "app"})
    proc.record(request(["a"], attrs={"http.method": "GET"}, resource={"region": "eu"}))
    proc.record(request(["a"]))
    calls = samples(proc, "app_calls_total")
    base = {"service_name": "svc", "span_name": "a", "span_kind": "SPAN_KIND_SERVER"}
    assert calls == {tuple(sorted({**base, "http_method": "GET", "region": "eu"}.items())): 1,
                     tuple(sorted({**base, "region": "none"}.items())): 1}
    assert samples(proc, "app_duration_seconds_sum")[tuple(sorted({**base, "region": "none"}.items()))] == \
        pytest.approx(0.003)


def feed(proc: SpanMetricsProcessor, req: ExportTraceServiceRequest, path: str) -> None:
    """One request through the protobuf path or the compiled one (numba, when installed)."""
    if path == "protobuf":
        proc.record(req)
        return
    data = req.SerializeToString()
    columns = SpanWalk().columns(data, len(req.resource_spans[0].scope_spans[0].spans))
    assert columns is not None
    proc.record_columns(columns)


PATHS = ["protobuf", pytest.param("compiled", marks=pytest.mark.skipif(not SpanWalk.load(),
                                                                           reason="numba is not installed"))]


@pytest.mark.parametrize("path", PATHS)
def test_cardinality_limit_holds_under_100000_span_names(path: str) -> None:
    """Spans of label sets past the limit fold into one overflow series; every span is still counted, and
    memory stops growing once the limit is reached."""
    limit = 1000
    proc, _, telemetry = make({"aggregation_cardinality_limit": limit})
    names = [f"GET /item/{i}" for i in range(100_000)]
    step = 1000
    for i in range(0, 20_000, step):
        feed(proc, request(names[i:i + step]), path)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(20_000, 100_000, step):
            feed(proc, request(names[i:i + step]), path)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert proc.series_count == limit + 1
    calls = samples(proc, "traces_span_metrics_calls_total")
    assert sum(calls.values()) == 100_000
    assert calls[(("otel_metric_overflow", "true"),)] == 100_000 - limit
    assert telemetry.exposition().decode().count(
        'tracetriage_spanmetrics_overflow_spans_total{processor="spanmetrics"} 99000.0') == 1
    # 80,000 more distinct names, after the limit: what is still allocated is not per name.
    assert after - before < 256 * 1024, f"{after - before} bytes held after 80,000 more span names"


@pytest.mark.skipif(not SpanWalk.load(), reason="numba is not installed")
def test_compiled_and_protobuf_paths_agree() -> None:
    """The same requests give the same series, histograms included, through either path."""
    slow, _, _ = make({"exclude_dimensions": ["span.kind"]})
    fast, _, _ = make({"exclude_dimensions": ["span.kind"]})
    label_sets = set()
    for i in range(30):
        label_sets |= {(f"svc-{i % 4}", n, i % 5 == 0) for n in (f"op-{i % 7}", "ÿ-ünïcode", f"op-{i % 3}")}
        req = request([f"op-{i % 7}", "ÿ-ünïcode", f"op-{i % 3}"], service=f"svc-{i % 4}", error=i % 5 == 0,
                      duration_ns=i * 700_000, kind=Span.SPAN_KIND_SERVER if i % 2 else Span.SPAN_KIND_CLIENT)
        slow.record(req)
        feed(fast, req, "compiled")
    for name in ("traces_span_metrics_calls_total", "traces_span_metrics_duration_milliseconds_bucket",
                 "traces_span_metrics_duration_milliseconds_count"):
        assert samples(fast, name) == samples(slow, name)
    assert samples(fast, "traces_span_metrics_duration_milliseconds_sum") == pytest.approx(
        samples(slow, "traces_span_metrics_duration_milliseconds_sum"))
    assert len(samples(fast, "traces_span_metrics_calls_total")) == len(label_sets)


def test_series_expire_after_metrics_expiration() -> None:
    proc, _, _ = make({"metrics_expiration": "1m"})
    proc.record(request(["old"]))
    proc.sweep(now=proc._series[("svc", "old", 2, 0)].touched + 30)
    assert proc.series_count == 1
    proc.sweep(now=proc._series[("svc", "old", 2, 0)].touched + 61)
    assert proc.series_count == 0


@pytest.mark.parametrize(("raw", "message"), [
    ({"exclude_dimensions": ["span.kindd"]}, "exclude_dimensions[0]: 'span.kindd' is not a default dimension"),
    ({"dimensions": [{"name": "a"}, {"name": "a"}]}, "dimensions[1].name: 'a' is listed twice"),
    ({"histogram": {"explicit": {"buckets": ["5ms", "1ms"]}}}, "histogram.explicit.buckets: must be in increasing"),
    ({"histogram": {"unit": "us"}}, "histogram.unit"),
    ({"exemplars": {"max_pending_traces": 0}}, "exemplars.max_pending_traces"),
])
def test_bad_config_names_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(Config, raw)
    assert message in str(info.value)
