"""The status page's cost: ``python -m bench.status_page [--rounds N] [--requests N] [--only render|span_path]``.

Prints one JSON object per line.

* ``render``: in this process, a service with 50 pipelines (otlp -> root_cause -> alert_routing -> tail_sampling
  -> file each; 10,000 spans sent through each over OTLP gRPC) and 10,000 open alert groups in one
  alert_routing (the real grouping engine, each group with its own team and service, group_wait 1 h so none
  flushes). Milliseconds per page (every panel, the 50 groups with most failures), per ``/api/v1/status``
  and per ``/api/v1/alerts?limit=10000`` (every group), each over real HTTP on 127.0.0.1, median and worst of
  ``--views`` views; and per metrics sample (what the sampler takes every 5 s).
* ``span_path``: the ``full`` scenario of bench.run (otlp -> root_cause -> alert_routing -> tail_sampling ->
  kafka, 500-span requests) in a collector subprocess, spans per collector CPU-second with the status page
  off, and on with a viewer loading the whole page every second (five times the page's own refresh) while
  the load runs: ``--rounds`` interleaved rounds, medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Collector, emit, free_port, run_sender, tansu
from bench.reference import SPANS_PER_REQUEST
from bench.run import DECISION_WAIT_S, config, wait_until

PIPELINES = 50
GROUPS = 10_000


def _render_config(grpc_port: int, ui_port: int, out: Path) -> str:
    pipes = "\n".join(f"""    traces/{i}:
      receivers: [otlp]
      processors: [root_cause, alert_routing, tail_sampling]
      exporters: [file]""" for i in range(PIPELINES))
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 16}}
processors:
  root_cause: {{decision_wait: 1s}}
  alert_routing:
    decision_wait: 1s
    group_wait: 1h
    max_groups: {GROUPS}
    shutdown_timeout: 1s
    route: {{receiver: sink}}
    receivers:
      - {{name: sink, webhook: {{url: "http://127.0.0.1:9/hook/secret-token"}}}}
  tail_sampling:
    decision_wait: 1s
    policies:
      - {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}
      - {{name: some, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
exporters:
  file: {{path: "{out}"}}
service:
  telemetry:
    logs: {{level: warn}}
    metrics: {{address: ""}}
    ui: {{endpoint: "127.0.0.1:{ui_port}"}}
  pipelines:
{pipes}
"""


def _groups(service: Any, n: int) -> None:
    """``n`` open groups in the first pipeline's alert_routing, through its grouping engine."""
    from pipelines.root_cause.model import Failure, RootCause

    proc = next(iter(service.host.pipeline_processors["traces/0"].values()))
    for p in service.host.pipeline_processors["traces/0"].values():
        if hasattr(p, "engine"):
            proc = p
    for i in range(n):
        cause = RootCause(f"svc-{i}", "SELECT", bytes(8), 2, ("frontend:GET /", f"svc-{i}:SELECT"), 0)
        failure = Failure("root", "frontend", "GET /", bytes(8), i.to_bytes(16, "big"), cause, (cause,), 1)
        proc.engine.add((f"team-{i % 100}", f"svc-{i}", "SELECT", "root", "page"), failure)


async def _render(workdir: Path, views: int) -> None:
    import aiohttp

    from collector.config.service import load_config
    from collector.registry import Registry
    from collector.service import Service
    from collector.ui.samples import take

    grpc_port, ui_port = free_port(), free_port()
    cfg = workdir / "render.yaml"
    cfg.write_text(_render_config(grpc_port, ui_port, workdir / "spans.jsonl"))
    service = Service(load_config([str(cfg)], Registry.default()))
    service.build()
    await service.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sender", "--endpoint", f"127.0.0.1:{grpc_port}", "--requests", "20",
            "--concurrency", "2", cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL)
        assert await proc.wait() == 0, "the sender failed"
        await asyncio.sleep(2.5)  # every trace decided
        _groups(service, GROUPS)
        base = f"http://127.0.0.1:{ui_port}"
        assert service.status_server is not None
        model = service.status_server.model
        assert model.alerts(0)["processors"][0]["open_groups"] == GROUPS

        async with aiohttp.ClientSession() as session:
            async def timed(path: str) -> tuple[float, int]:
                t0 = time.perf_counter()
                async with session.get(base + path) as r:
                    body = await r.read()
                    assert r.status == 200, (path, r.status)
                return (time.perf_counter() - t0) * 1000, len(body)

            for path, name in (("/", "page"), ("/api/v1/status", "api_status"),
                               ("/api/v1/alerts?limit=10000", "api_alerts_all")):
                await timed(path)  # warm
                got = [await timed(path) for _ in range(views)]
                ms = [g[0] for g in got]
                emit({"bench": f"status_{name}", "pipelines": PIPELINES, "open_groups": GROUPS,
                      "median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
                      "bytes": got[-1][1], "views": views})
        t0 = time.perf_counter()
        for _ in range(views):
            take(service.telemetry)
        emit({"bench": "status_metrics_sample", "pipelines": PIPELINES,
              "ms": round((time.perf_counter() - t0) * 1000 / views, 1)})
    finally:
        await service.shutdown(limit=10)


def _with_ui(text: str, ui_port: int) -> str:
    return text.replace("  telemetry:\n", f'  telemetry:\n    ui: {{endpoint: "127.0.0.1:{ui_port}"}}\n', 1)


def _span_path_round(ui: bool, requests: int, workdir: Path, run: int) -> dict[str, Any]:
    with tansu() as brokers:
        grpc_port, metrics_port, ui_port = free_port(), free_port(), free_port()
        text = config("full", grpc_port, metrics_port, brokers)
        col = Collector(_with_ui(text, ui_port) if ui else text, workdir, metrics_port)
        stop = threading.Event()
        views = [0]

        def viewer() -> None:
            while not stop.wait(1.0):
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=10) as r:
                    r.read()
                views[0] += 1

        try:
            col.wait_ready()
            run_sender(f"127.0.0.1:{grpc_port}", 4)
            warm = 4 * SPANS_PER_REQUEST
            wait_until(lambda: col.metric("tracetriage_trace_buffer_spans") == 0
                       and col.metric("otelcol_receiver_accepted_spans_total") >= warm, 60)
            time.sleep(2)
            thread = threading.Thread(target=viewer, daemon=True)
            if ui:
                thread.start()
            cpu0 = col.cpu()
            run_sender(f"127.0.0.1:{grpc_port}", requests)
            total = warm + requests * SPANS_PER_REQUEST
            time.sleep(DECISION_WAIT_S)

            def drained() -> bool:
                t = col.scrape()
                return (col.metric("otelcol_receiver_accepted_spans_total", t) >= total
                        and col.metric("tracetriage_trace_buffer_spans", t) == 0
                        and col.metric("otelcol_exporter_queue_size", t) == 0)

            wait_until(drained, 120, every=0.5)
            cpu = col.cpu() - cpu0
            stop.set()
            if ui:
                thread.join(15)
            record = {"bench": "status_span_path", "ui": ui, "run": run, "spans": requests * SPANS_PER_REQUEST,
                      "collector_cpu_s": round(cpu, 3), "spans_per_cpu_s": round(requests * SPANS_PER_REQUEST / cpu),
                      "page_views": views[0]}
            emit(record)
            return record
        finally:
            stop.set()
            col.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("render", "span_path"), action="append")
    p.add_argument("--views", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=600)
    args = p.parse_args()
    only = set(args.only or ("render", "span_path"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "render" in only:
            asyncio.run(_render(work, args.views))
        if "span_path" in only:
            runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for r in range(1, args.rounds + 1):
                for ui in (False, True):
                    with contextlib.suppress(FileNotFoundError):
                        (work / "bench-collector.log").unlink()
                    runs[ui].append(_span_path_round(ui, args.requests, work, r))
            off = statistics.median(x["spans_per_cpu_s"] for x in runs[False])
            on = statistics.median(x["spans_per_cpu_s"] for x in runs[True])
            emit({"bench": "status_span_path_median", "rounds": args.rounds, "ui_off_spans_per_cpu_s": round(off),
                  "ui_on_spans_per_cpu_s": round(on), "change": round(on / off - 1, 4),
                  "spread_off": [min(x["spans_per_cpu_s"] for x in runs[False]),
                                 max(x["spans_per_cpu_s"] for x in runs[False])],
                  "spread_on": [min(x["spans_per_cpu_s"] for x in runs[True]),
                                max(x["spans_per_cpu_s"] for x in runs[True])]})


if __name__ == "__main__":
    main()
