"""The benchmark suite: ``python -m bench.run [--short] [--only NAME ...]``.

Prints one JSON object per line. Figures:
* ``parse_ceiling``: upb decode rate of the reference payload in this process (spans/s, one core).
* ``passthrough``, ``tail_sampling``, ``full``: spans per collector CPU-second (CPU time of the collector
  process from /proc; the load generator runs in its own process), each also divided by parse_ceiling.
* ``memory``: bytes of collector process memory per buffered span (1,000,000 spans held in the trace buffer).
The collector exports to a tansu broker (Kafka protocol) started here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.harness import Collector, emit, free_port, run_sender, tansu
from bench.reference import SPANS_PER_REQUEST, ReferenceLoad

POLICIES = """
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 500}}
      - {name: some, type: probabilistic, probabilistic: {sampling_percentage: 10}}"""


def config(scenario: str, grpc_port: int, metrics_port: int, brokers: str, hook_url: str = "",
           decision_wait: str = "2s") -> str:
    processors = {
        "passthrough": "[batch]",
        "tail_sampling": "[tail_sampling, batch]",
        "full": "[root_cause, alert_routing, tail_sampling, batch]",
        "memory": "[tail_sampling]",
    }[scenario]
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 16}}
processors:
  batch: {{send_batch_size: 8192, timeout: 200ms}}
  tail_sampling:
    decision_wait: {decision_wait}
    num_traces: 1000000
    policies:{POLICIES}
  root_cause:
    decision_wait: {decision_wait}
  alert_routing:
    decision_wait: {decision_wait}
    group_wait: 1s
    ownership: {{catalog: ["{Path(__file__).resolve().parent.parent / 'configs/catalog'}/*.yaml"]}}
    route: {{receiver: sink}}
    receivers:
      - {{name: sink, webhook: {{url: "{hook_url or 'http://127.0.0.1:9/hook'}"}}}}
exporters:
  kafka:
    brokers: ["{brokers}"]
    traces: {{topic: bench_spans, encoding: otlp_proto}}
    partition_traces_by_id: true
    sending_queue: {{queue_size: 5000}}
service:
  telemetry:
    logs: {{level: warn}}
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: {processors}
      exporters: [kafka]
"""


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


def wait_until(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise TimeoutError("benchmark did not drain in time")


def throughput(scenario: str, requests: int, ceiling: float, workdir: Path) -> None:
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
            cpu0 = col.cpu()
            stats = run_sender(f"127.0.0.1:{grpc_port}", requests)
            total = warm + requests * SPANS_PER_REQUEST
            wait_until(lambda: col.metric("otelcol_receiver_accepted_spans_total") >= total
                       and col.metric("tracetriage_trace_buffer_spans") == 0
                       and col.metric("otelcol_exporter_queue_size") == 0
                       and col.metric("otelcol_processor_batch_pending_spans") == 0, 120)
            cpu = col.cpu() - cpu0
            spans = requests * SPANS_PER_REQUEST
            sent = col.metric("otelcol_exporter_sent_spans_total")
            rate = spans / cpu
            emit({"bench": scenario, "spans": spans, "collector_cpu_s": round(cpu, 3),
                  "spans_per_cpu_s": round(rate), "of_parse_ceiling": round(rate / ceiling, 4),
                  "exported_spans": int(sent), "load_wall_s": round(stats["wall_s"], 2),
                  "sender_retries": stats["retries"],
                  "timer_lag_s": col.metric("otelcol_processor_tail_sampling_sampling_decision_timer_lag_seconds")})
        finally:
            col.stop()


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
            run_sender(f"127.0.0.1:{grpc_port}", requests)
            spans = col.metric("tracetriage_trace_buffer_spans")
            time.sleep(1)
            rss1 = col.rss()
            emit({"bench": "memory", "buffered_spans": int(spans), "rss_delta_bytes": rss1 - rss0,
                  "bytes_per_buffered_span": round((rss1 - rss0) / max(spans, 1), 1),
                  "rss_bytes": rss1})
        finally:
            col.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="small counts (used by the test suite)")
    p.add_argument("--only", action="append", choices=["parse_ceiling", "passthrough", "tail_sampling", "full",
                                                        "memory"])
    a = p.parse_args()
    only = set(a.only or ["parse_ceiling", "passthrough", "tail_sampling", "full", "memory"])
    requests = 40 if a.short else 1000
    ceiling = parse_ceiling(a.short)
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in ("passthrough", "tail_sampling", "full"):
            if scenario in only:
                throughput(scenario, requests, ceiling, Path(tmp))
        if "memory" in only:
            memory(40 if a.short else 2000, Path(tmp))


if __name__ == "__main__":
    main()
