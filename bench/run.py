"""The benchmark suite: ``python -m bench.run [--short] [--only NAME ...] [--repeat N]``.

Prints one JSON object per line. Figures:
* ``parse_ceiling``: upb decode rate of the reference payload in this process (spans/s, one core).
* ``passthrough``, ``tail_sampling``, ``full``, ``full_slo``: spans per collector CPU-second (CPU time of the
  collector process from /proc; the load generator runs in its own process), each also divided by parse_ceiling.
  They run ``--repeat`` rounds (default 5), the scenarios interleaved and each round with its own
  parse_ceiling, then one ``<scenario>_median`` line each: on a shared machine one run can be a third
  slower than the next, and the median of interleaved rounds is the figure that repeats.
  ``full_servicegraph`` and ``full_spanmetrics`` are ``full`` behind that span-level processor.
  ``full_slo`` is ``full`` with the ``slo`` stage after ``root_cause``: an availability and a latency
  objective on frontend's root span (``GET /shop``), as objectives name a service's entry span: a
  frontend trace has one signal span, measured twice; the other services' traces are skipped by origin.
  Each run also gives ``stage_cpu_share``: each trace stage's CPU time (``tracetriage_trace_stage_cpu_seconds``)
  and that of each span-level stage that reports it (``servicegraph``, ``spanmetrics``:
  ``tracetriage_span_stage_cpu_seconds``) over the collector's, in the same run, so a stage's cost does not
  depend on comparing two noisy runs.
  ``full_trace_tests`` is ``full`` with ``trace_tests`` first, 20 definitions (bench/trace_tests_defs.py), one
  of which tests every trace of the load (the worst case); ``full_trace_tests_idle`` has 20 definitions for
  endpoints the load does not have (the cost of finding out, on every trace); ``full_trace_tests_mix`` has two
  that test one endpoint of one service (checkout's ``GET /shop``): a fifth of the load's traces is tested.
* ``memory``: bytes of collector process memory per buffered span (1,000,000 spans held in the trace buffer).
* ``latency``: p50/p99 from the client's export call to the record's arrival in Kafka (agent pipeline
  otlp -> kafka), at a steady moderate rate.
* ``accuracy``: root-cause top-1 accuracy against the load generator's ground truth, per fault scenario:
  the error walk's over failed traces, and the latency walk's over the traces of the slow-* scenarios
  whose root is slower than the stage's ``latency_threshold`` (``kind`` says which).
The collector exports to a tansu broker (Kafka protocol) started here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.harness import Collector, emit, free_port, run_sender, tansu
from bench.reference import SPANS_PER_REQUEST, ReferenceLoad
from bench.trace_tests_defs import write_definitions

POLICIES = """
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 500}}
      - {name: some, type: probabilistic, probabilistic: {sampling_percentage: 10}}"""


DECISION_WAIT_S = 2.0  # the throughput scenarios' decision_wait


def config(scenario: str, grpc_port: int, metrics_port: int, brokers: str, hook_url: str = "",
           decision_wait: str = f"{DECISION_WAIT_S:g}s") -> str:
    names = {
        "passthrough": ["batch"],
        "tail_sampling": ["tail_sampling"],
        "full": ["root_cause", "alert_routing", "tail_sampling"],
        "root_cause": ["root_cause"],  # (bench.instructions: the stage alone)
        "full_slo": ["root_cause", "slo", "alert_routing", "tail_sampling"],
        "full_trace_tests": ["trace_tests", "root_cause", "alert_routing", "tail_sampling"],
        "full_trace_tests_idle": ["trace_tests", "root_cause", "alert_routing", "tail_sampling"],
        "full_trace_tests_mix": ["trace_tests", "root_cause", "alert_routing", "tail_sampling"],
        "memory": ["tail_sampling"],
        # ``full`` behind a span-derived metrics processor (served on an ephemeral port, never scraped here).
        "full_servicegraph": ["servicegraph", "root_cause", "alert_routing", "tail_sampling"],
        "full_spanmetrics": ["spanmetrics", "root_cause", "alert_routing", "tail_sampling"],
    }[scenario]
    catalog = Path(__file__).resolve().parent.parent / "configs/catalog"
    blocks = {
        "batch": "  batch: {send_batch_size: 8192, timeout: 200ms}",
        "tail_sampling": f"""  tail_sampling:
    decision_wait: {decision_wait}
    num_traces: 1000000
    policies:{POLICIES}""",
        "root_cause": f"""  root_cause:
    decision_wait: {decision_wait}""",
        # Every reference span is a SERVER span with a parent from another request: each waits in the store
        # for a client that never comes and expires unpaired. The load arrives in about half a second, so the
        # store fills at max_items and the rest (300,000 of 500,000) are dropped and counted: both paths run.
        "servicegraph": """  servicegraph:
    endpoint: 127.0.0.1:0
    store: {ttl: 2s, max_items: 200000}""",
        "spanmetrics": """  spanmetrics:
    endpoint: 127.0.0.1:0
    exemplars: {enabled: true}""",
        "slo": f"""  slo:
    decision_wait: {decision_wait}
    slos:
      - {json.dumps(_objective("shop-availability", {"sli": "availability"}))}
      - {json.dumps(_objective("shop-latency", {"sli": "latency", "latency_threshold": "300ms"}))}""",
        "alert_routing": f"""  alert_routing:
    decision_wait: {decision_wait}
    group_wait: 1s
    ownership: {{catalog: ["{catalog}/*.yaml"]}}
    route: {{receiver: sink}}
    receivers:
      - {{name: sink, webhook: {{url: "{hook_url or 'http://127.0.0.1:9/hook'}"}}}}""",
    }
    if scenario.startswith("full_trace_tests"):
        defs = write_definitions(Path(tempfile.gettempdir()) / f"bench-trace-tests-{grpc_port}",
                                 tested={"full_trace_tests": "all", "full_trace_tests_idle": "idle",
                                         "full_trace_tests_mix": "mix"}[scenario])
        blocks["trace_tests"] = f"""  trace_tests:
    decision_wait: {decision_wait}
    definitions: "{defs}"
    reload_interval: 0s"""
    processors = "\n".join(blocks[n] for n in names)
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 16}}
processors:
{processors}
exporters:
  kafka:
    brokers: ["{brokers}"]
    traces: {{topic: bench_spans, encoding: otlp_proto}}
    partition_traces_by_id: true
    sending_queue: {{queue_size: 5000}}
service:
  telemetry:
    logs: {{level: info}}
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{", ".join(names)}]
      exporters: [kafka]
"""


def _objective(name: str, good: dict[str, str]) -> dict[str, Any]:
    """An OpenSLO SLO on frontend's root spans in the reference load (``GET /shop``)."""
    def source(spec: dict[str, str]) -> dict[str, Any]:
        return {"metricSource": {"type": "tracetriage", "spec": spec}}

    return {"metadata": {"name": name}, "spec": {
        "service": "frontend", "budgetingMethod": "Occurrences", "objectives": [{"target": 0.999}],
        "indicator": {"spec": {"ratioMetric": {"good": source(good),
                                               "total": source({"service": "frontend", "span_name": "GET /shop"})}}},
    }}


def parse_ceiling(short: bool) -> float:
    payloads = list(ReferenceLoad().requests(20))
    rounds = 20 if short else 200
    t0 = time.process_time()
    for _ in range(rounds):
        for p in payloads:
            ExportTraceServiceRequest.FromString(p)
    rate = rounds * len(payloads) * SPANS_PER_REQUEST / (time.process_time() - t0)
    emit({"bench": "parse_ceiling", "spans_per_s": round(rate), "bytes_per_span": ReferenceLoad().bytes_per_span})
    return rate


def wait_until(cond: Callable[[], bool], timeout: float, every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise TimeoutError("benchmark did not drain in time")


def stage_cpu(text: str) -> dict[str, float]:
    """CPU seconds of each stage that reports it so far (``tracetriage_trace_stage_cpu_seconds_total`` and
    ``tracetriage_span_stage_cpu_seconds_total`` by processor)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("tracetriage_trace_stage_cpu_seconds_total{", "tracetriage_span_stage_cpu_seconds_total{")):
            head, _, value = line.rpartition(" ")
            name = head.split('processor="', 1)[1].split('"', 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out


def throughput(scenario: str, requests: int, ceiling: float, workdir: Path, run: int = 1) -> dict[str, Any]:
    with tansu() as brokers:
        grpc_port, metrics_port = free_port(), free_port()
        col = Collector(config(scenario, grpc_port, metrics_port, brokers), workdir, metrics_port)
        try:
            col.wait_ready()
            # Warm-up: connections, topic creation, lazy imports.
            run_sender(f"127.0.0.1:{grpc_port}", 4)
            warm = 4 * SPANS_PER_REQUEST
            wait_until(lambda: col.metric("tracetriage_trace_buffer_spans") == 0
                       and col.metric("otelcol_exporter_queue_size") == 0
                       and col.metric("otelcol_receiver_accepted_spans_total") >= warm, 60)
            time.sleep(3)
            stage0 = stage_cpu(col.scrape())
            cpu0 = col.cpu()
            stats = run_sender(f"127.0.0.1:{grpc_port}", requests)
            total = warm + requests * SPANS_PER_REQUEST
            # The last traces cannot be decided before decision_wait has passed since they arrived: no
            # checks until then. Each check is one scrape, and the collector's CPU time counts the scrapes
            # too (about 7 ms each for the full pipeline's metrics), where a Prometheus server scrapes every
            # 15 s or so.
            if scenario != "passthrough":
                time.sleep(DECISION_WAIT_S)
            def drained() -> bool:
                text = col.scrape()
                return (col.metric("otelcol_receiver_accepted_spans_total", text) >= total
                        and col.metric("tracetriage_trace_buffer_spans", text) == 0
                        and col.metric("otelcol_exporter_queue_size", text) == 0
                        and col.metric("otelcol_processor_batch_pending_spans", text) == 0)

            wait_until(drained, 120, every=0.5)
            cpu = col.cpu() - cpu0
            stages = {k: v - stage0.get(k, 0.0) for k, v in stage_cpu(col.scrape()).items()}
            spans = requests * SPANS_PER_REQUEST
            sent = col.metric("otelcol_exporter_sent_spans_total")
            rate = spans / cpu
            record = {"bench": scenario, "run": run, "spans": spans, "collector_cpu_s": round(cpu, 3),
                      "spans_per_cpu_s": round(rate), "of_parse_ceiling": round(rate / ceiling, 4),
                      "exported_spans": int(sent), "load_wall_s": round(stats["wall_s"], 2),
                      "sender_retries": stats["retries"],
                      "timer_lag_s": col.metric(
                          "otelcol_processor_tail_sampling_sampling_decision_timer_lag_seconds"),
                      "stage_cpu_share": {k: round(v / cpu, 4) for k, v in sorted(stages.items())}}
            if scenario.startswith("full_trace_tests"):
                record["tested_traces"] = int(col.metric("tracetriage_trace_tests_traces_total",
                                                         outcome="tested"))
            emit(record)
            return record
        finally:
            col.stop()


def summarize(scenario: str, runs: list[dict[str, Any]]) -> None:
    """The median run of a scenario (by spans per CPU-second), with the spread of all runs."""
    rates = sorted(r["spans_per_cpu_s"] for r in runs)
    shares = sorted(r["of_parse_ceiling"] for r in runs)
    stages = sorted({k for r in runs for k in r["stage_cpu_share"]})
    stage_share = {k: sorted(r["stage_cpu_share"].get(k, 0.0) for r in runs)[len(runs) // 2] for k in stages}
    emit({"bench": f"{scenario}_median", "runs": len(runs), "spans_per_cpu_s": rates[len(rates) // 2],
          "of_parse_ceiling": shares[len(shares) // 2], "min_spans_per_cpu_s": rates[0],
          "max_spans_per_cpu_s": rates[-1], "max_timer_lag_s": max(r["timer_lag_s"] for r in runs),
          "median_stage_cpu_share": stage_share})


def memory(requests: int, workdir: Path) -> None:
    with tansu() as brokers:
        grpc_port, metrics_port = free_port(), free_port()
        col = Collector(config("memory", grpc_port, metrics_port, brokers, decision_wait="3600s"), workdir,
                        metrics_port)
        try:
            col.wait_ready()
            run_sender(f"127.0.0.1:{grpc_port}", 2)  # warm-up
            time.sleep(1)
            rss0 = col.rss()
            spans0 = col.metric("tracetriage_trace_buffer_spans")
            run_sender(f"127.0.0.1:{grpc_port}", requests)
            spans = col.metric("tracetriage_trace_buffer_spans") - spans0
            time.sleep(1)
            rss1 = col.rss()
            emit({"bench": "memory", "buffered_spans": int(spans), "rss_delta_bytes": rss1 - rss0,
                  "bytes_per_buffered_span": round((rss1 - rss0) / max(spans, 1), 1),
                  "rss_bytes": rss1})
        finally:
            col.stop()


LATENCY_CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
exporters:
  kafka:
    brokers: ["{brokers}"]
    traces: {{topic: latency_spans, encoding: otlp_proto}}
    partition_traces_by_id: true
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [kafka]}}
"""


async def _latency_run(grpc_port: int, brokers: str, seconds: float, rate: float) -> list[float]:
    import grpc
    from aiokafka import AIOKafkaConsumer
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as Req

    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    consumer = AIOKafkaConsumer("latency_spans", bootstrap_servers=brokers, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=20)
            now = time.perf_counter()
            for records in batches.values():
                for rec in records:
                    req = Req.FromString(rec.value)
                    for rs in req.resource_spans:
                        for ss in rs.scope_spans:
                            for sp in ss.spans:
                                t = sent.pop(sp.trace_id, None)
                                if t is not None:
                                    latencies.append(now - t)

    task = asyncio.create_task(consume())
    load = ReferenceLoad(seed=99)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        interval = SPANS_PER_REQUEST / rate
        deadline = time.perf_counter() + seconds
        for payload in load.requests(10**9):
            if time.perf_counter() > deadline:
                break
            ids = {sp.trace_id for rs in Req.FromString(payload).resource_spans for ss in rs.scope_spans
                   for sp in ss.spans}
            t0 = time.perf_counter()
            for tid in ids:
                sent[tid] = t0
            await call(payload, timeout=10)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    wait_deadline = time.perf_counter() + 30
    while sent and time.perf_counter() < wait_deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await task
    await consumer.stop()
    return sorted(latencies)


def latency(workdir: Path, short: bool) -> None:
    with tansu() as brokers:
        grpc_port, metrics_port = free_port(), free_port()
        col = Collector(LATENCY_CONFIG.format(grpc_port=grpc_port, metrics_port=metrics_port, brokers=brokers),
                        workdir, metrics_port)
        try:
            col.wait_ready()
            run_sender(f"127.0.0.1:{grpc_port}", 2)  # warm-up: connections, topic
            rate = 20_000.0
            lat = asyncio.run(_latency_run(grpc_port, brokers, 3.0 if short else 15.0, rate))
            emit({"bench": "latency", "pipeline": "otlp -> kafka (partition_traces_by_id)", "rate_spans_s": rate,
                  "traces": len(lat), "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
                  "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None})
        finally:
            col.stop()


ACCURACY_LATENCY_MS = 250  # the accuracy run's latency_threshold (the default root signal)
ACCURACY_CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
  root_cause: {{decision_wait: 2s, annotate: true, latency_threshold: {latency_threshold_ms}ms}}
exporters:
  file: {{path: "{out}"}}
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces: {{receivers: [otlp], processors: [root_cause], exporters: [file]}}
"""


def accuracy(workdir: Path, short: bool) -> None:
    from bench.loadgen import Batch, Generator, Truth, load_plan, load_topology
    from bench.loadgen.send import SendOptions, send
    from collector.otlpjson import decode_request

    grpc_port, metrics_port = free_port(), free_port()
    out = workdir / "accuracy.jsonl"
    col = Collector(ACCURACY_CONFIG.format(grpc_port=grpc_port, metrics_port=metrics_port, out=out,
                                           latency_threshold_ms=ACCURACY_LATENCY_MS), workdir, metrics_port)
    try:
        col.wait_ready()
        truths: dict[str, Truth] = {}

        def record(batch: Batch) -> None:
            for t in batch.truths:
                truths[t.trace_id] = t

        gen = Generator(load_topology(), load_plan("accuracy"), seed=11)
        count = 400 if short else 4000
        asyncio.run(send(gen, SendOptions(endpoint=f"127.0.0.1:{grpc_port}", count=count, rate=20_000),
                         on_batch=record))
        wait_until(lambda: col.metric("tracetriage_trace_buffer_spans") == 0
                   and col.metric("otelcol_receiver_accepted_spans_total") > 0, 60)
        time.sleep(1.5)
    finally:
        col.stop()
    found: dict[str, tuple[str, str]] = {}  # trace id -> (rootcause.service, rootcause.kind)
    for line in out.read_text().splitlines():
        for rs in decode_request(line.encode()).resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    attrs = {kv.key: kv.value.string_value for kv in sp.attributes
                             if kv.key in ("rootcause.service", "rootcause.kind")}
                    if "rootcause.service" in attrs:
                        found[sp.trace_id.hex()] = (attrs["rootcause.service"], attrs.get("rootcause.kind", "error"))
    per: dict[tuple[str, str], list[int]] = {}  # (kind, scenario) -> [hits, traces]
    for tid, truth in truths.items():
        if truth.error and truth.root_causes:
            kind, expected = "error", truth.root_causes[0].service
        elif truth.latency_causes and truth.duration_ms > ACCURACY_LATENCY_MS:
            kind, expected = "latency", truth.latency_causes[0].service
        else:
            continue
        counts = per.setdefault((kind, truth.scenario), [0, 0])
        counts[0] += found.get(tid) == (expected, kind)
        counts[1] += 1
    for (kind, scenario), (hits, n) in sorted(per.items()):
        counted = "failed_traces" if kind == "error" else "slow_traces"
        emit({"bench": "accuracy", "kind": kind, "scenario": scenario, counted: n, "top1": round(hits / n, 4)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="small counts (used by the test suite)")
    names = ["parse_ceiling", "passthrough", "tail_sampling", "full", "full_slo", "full_trace_tests",
             "full_trace_tests_idle", "full_trace_tests_mix", "full_servicegraph", "full_spanmetrics", "memory",
             "latency", "accuracy"]
    p.add_argument("--only", action="append", choices=names)
    p.add_argument("--repeat", type=int, default=None,
                   help="rounds of the throughput scenarios, interleaved, each with its own parse_ceiling; a "
                        "median line per scenario follows (default 5, 1 with --short)")
    a = p.parse_args()
    only = set(a.only or names)
    requests = 40 if a.short else 1000
    rounds = max(1, a.repeat if a.repeat is not None else (1 if a.short else 5))
    throughput_scenarios = ("passthrough", "tail_sampling", "full", "full_slo", "full_trace_tests",
                            "full_trace_tests_idle", "full_trace_tests_mix", "full_servicegraph", "full_spanmetrics")
    scenarios = [s for s in throughput_scenarios if s in only]
    ceiling = parse_ceiling(a.short)
    with tempfile.TemporaryDirectory() as tmp:
        # Rounds interleave the scenarios, so a slow spell of a shared machine hits all of them alike.
        results: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
        for k in range(rounds):
            if k:
                ceiling = parse_ceiling(a.short)
            for scenario in scenarios:
                results[scenario].append(throughput(scenario, requests, ceiling, Path(tmp), k + 1))
        if rounds > 1:
            for scenario in scenarios:
                summarize(scenario, results[scenario])
        if "memory" in only:
            memory(40 if a.short else 2000, Path(tmp))
        if "latency" in only:
            latency(Path(tmp), a.short)
        if "accuracy" in only:
            accuracy(Path(tmp), a.short)


if __name__ == "__main__":
    main()
