"""The status page's cost: ``python -m bench.status_page [--views N] [--requests N] [--only render|view_cpu]``.

Prints one JSON object per line.

* ``render``: in this process, a service with 50 pipelines (otlp -> root_cause -> alert_routing -> tail_sampling
  -> file each; 10,000 spans sent through each over OTLP gRPC) and 10,000 open alert groups in one
  alert_routing (the real grouping engine, each group with its own team and service, group_wait 1 h so none
  flushes). Milliseconds per page (every panel, the 50 groups with most failures), per ``/api/v1/status``
  and per ``/api/v1/alerts?limit=10000`` (every group), each over real HTTP on 127.0.0.1, median and worst of
  ``--views`` views; and per metrics sample (what the sampler takes every 5 s).
* ``view_cpu``: the ``full`` scenario of bench.run (otlp -> root_cause -> alert_routing -> tail_sampling ->
  kafka) in a collector subprocess with the status page on, after ``--requests`` reference requests: the
  collector's CPU time (from /proc) per page view and per ``/api/v1/status``, over ``4 x --views`` views,
  and the share of one core that one viewer refreshing every 5 s costs. The span path itself is unchanged
  by serving the page (views run between batches on the event loop); its instructions per span are
  ``python -m bench.instructions --scenario full``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
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


def _view_cpu(views: int, requests: int, workdir: Path) -> None:
    """CPU time the collector spends per page view and per API view, from /proc, the collector idle after a
    load (its tallies full, its buffers empty), so the figure is the view's alone."""
    with tansu() as brokers:
        grpc_port, metrics_port, ui_port = free_port(), free_port(), free_port()
        col = Collector(_with_ui(config("full", grpc_port, metrics_port, brokers), ui_port), workdir, metrics_port)
        try:
            col.wait_ready()
            run_sender(f"127.0.0.1:{grpc_port}", requests)
            total = requests * SPANS_PER_REQUEST
            time.sleep(DECISION_WAIT_S)
            wait_until(lambda: col.metric("otelcol_receiver_accepted_spans_total") >= total
                       and col.metric("tracetriage_trace_buffer_spans") == 0, 120)
            for path, name in (("/", "page"), ("/api/v1/status", "api_status")):
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}{path}", timeout=10) as r:
                    r.read()  # warm
                cpu0 = col.cpu()
                t0 = time.monotonic()
                for _ in range(views):
                    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}{path}", timeout=10) as r:
                        r.read()
                cpu = col.cpu() - cpu0
                wall = time.monotonic() - t0
                per_view = cpu / views
                # One viewer refreshing every 5 s (the page's default) also has the sampler's sample each 5 s,
                # which the views above include (at most one a second).
                emit({"bench": f"status_view_cpu_{name}", "views": views, "cpu_ms_per_view": round(per_view * 1000, 2),
                      "wall_s": round(wall, 2), "one_viewer_share_of_a_core": round(per_view / 5.0, 5)})
        finally:
            col.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("render", "view_cpu"), action="append")
    p.add_argument("--views", type=int, default=10)
    p.add_argument("--requests", type=int, default=200, help="reference requests sent before view_cpu's views")
    args = p.parse_args()
    only = set(args.only or ("render", "view_cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "render" in only:
            asyncio.run(_render(work, args.views))
        if "view_cpu" in only:
            _view_cpu(args.views * 4, args.requests, work)

if __name__ == "__main__":
    main()
