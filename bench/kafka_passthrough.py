"""Benchmark: OTLP/gRPC -> batch -> kafka (partition_traces_by_id) with the reference payload of DESIGN.md.

The collector runs as a subprocess (the CLI), the broker is a local tansu, the load generator is this
process. Prints one JSON object per line with the collector's CPU time (from /proc) for the spans sent:

    .venv/bin/python bench/kafka_passthrough.py [--spans 1000000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.kafka.broker import Broker, create_topic_sync  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_REQUEST = 500
SPANS_PER_TRACE = 10


def reference_request(seed: int) -> bytes:
    """500 spans with 8 attributes each, about 275 bytes per span on the wire."""
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "checkout"
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    tid = b""
    for i in range(SPANS_PER_REQUEST):
        if i % SPANS_PER_TRACE == 0:
            tid = rnd.randbytes(16)
        span = ss.spans.add(trace_id=tid, span_id=rnd.randbytes(8), name=f"GET /api/v1/item/{i % 50}", kind=2,
                            start_time_unix_nano=1_700_000_000_000_000_000 + i,
                            end_time_unix_nano=1_700_000_000_050_000_000 + i)
        for a in range(8):
            span.attributes.add(key=f"attr.{a}").value.string_value = f"val-{rnd.randint(0, 10**7):07d}"
    return req.SerializeToString()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def plugin_path(workdir: Path) -> str:
    """Offer the kafka exporter as an entry-point plugin while it is not a builtin yet."""
    from collector.component import Kind
    from collector.registry import Registry

    if Registry.default(plugins=False).get(Kind.EXPORTER, "kafka") is not None:
        return ""
    info = workdir / "tt_kafka_exporter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tt-kafka-exporter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tracetriage.components]\nkafka = collector.exporters.kafka:factory\n")
    return str(workdir)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--partition-by-trace", default="true")
    args = ap.parse_args()
    requests = [reference_request(i) for i in range(20)]
    workdir = Path(tempfile.mkdtemp(prefix="tt-bench-"))
    broker = Broker(workdir)
    broker.start()
    create_topic_sync(broker.address, "otlp_spans", 4)
    grpc_port, metrics_port = free_port(), free_port()
    cfg = workdir / "bench.yaml"
    cfg.write_text(f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}}}}}
processors:
  batch: {{send_batch_size: 8192, timeout: 200ms}}
exporters:
  kafka:
    brokers: ["{broker.address}"]
    partition_traces_by_id: {args.partition_by_trace}
    sending_queue: {{queue_size: 100}}
service:
  telemetry: {{logs: {{level: warn}}, metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines: {{traces: {{receivers: [otlp], processors: [batch], exporters: [kafka]}}}}
""")
    env = {**os.environ}
    extra = plugin_path(workdir)
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra, env.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "collector", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                            stderr=open(workdir / "collector.stderr", "wb"))  # noqa: SIM115
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        deadline = time.monotonic() + 30
        while True:  # warm-up and readiness
            try:
                call(requests[0], timeout=5)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        while metric(metrics_port, "otelcol_exporter_sent_spans_total") < SPANS_PER_REQUEST:
            time.sleep(0.1)
        base_sent = metric(metrics_port, "otelcol_exporter_sent_spans_total")
        n_requests = args.spans // SPANS_PER_REQUEST
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        in_flight: list[grpc.Future] = []
        for i in range(n_requests):
            while True:
                fut = call.future(requests[i % len(requests)], timeout=30)
                in_flight.append(fut)
                if len(in_flight) >= args.concurrency:
                    done = in_flight.pop(0)
                    try:
                        done.result()
                    except grpc.RpcError as e:
                        if e.code() != grpc.StatusCode.UNAVAILABLE:
                            raise
                        time.sleep(0.05)  # backpressure; the request is lost to the count, resend
                        continue
                break
        for fut in in_flight:
            fut.result()
        target = base_sent + n_requests * SPANS_PER_REQUEST
        while metric(metrics_port, "otelcol_exporter_sent_spans_total") < target:
            time.sleep(0.05)
        wall, cpu = time.monotonic() - t0, cpu_seconds(proc.pid) - cpu0
        spans = n_requests * SPANS_PER_REQUEST
        print(json.dumps({"bench": "kafka_passthrough", "spans": spans, "collector_cpu_s": round(cpu, 3),
                          "spans_per_cpu_s": round(spans / cpu), "wall_s": round(wall, 3),
                          "partition_traces_by_id": args.partition_by_trace == "true",
                          "bytes_per_span": round(len(requests[0]) / SPANS_PER_REQUEST, 1)}), flush=True)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(30)
        broker.stop()


if __name__ == "__main__":
    main()
