"""The overload benchmark: ``python -m bench.overload [--seconds 60] [--factor 3]``.

A collector with ``memory_limiter`` (``limit_mib: 300``, ``spike_limit_mib: 60``), ``tail_sampling`` and
the ``file`` exporter is first measured closed-loop (how many spans per second it takes when every request
waits for its answer), then offered ``--factor`` times that rate, open-loop, for ``--seconds``: each request
is sent once and a refusal (``UNAVAILABLE``) is counted, not retried. After the burst, probes every
``PROBE_EVERY`` seconds find when the collector accepts again. Printed per run (one JSON line):
accepted, refused and exported spans, peak RSS, the limiter's states from ``/metrics``, and the recovery
time (end of burst to the first accepted probe after the buffer drained).

Two runs: ``limit_mib: 300`` (``sized``; the soft limit leaves data a little room above the idle
process) and ``limit_mib: 250`` (``near_idle``: a limit the idle process nearly fills, which must warn at
start and still recover). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.harness import Collector, emit, free_port
from bench.reference import SPANS_PER_REQUEST, ReferenceLoad

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROBE_EVERY = 0.25
CHECK_INTERVAL = "250ms"


def config(grpc_port: int, metrics_port: int, out: Path, limit_mib: int, spike_limit_mib: int,
           decision_wait: str = "2s", check_interval: str = CHECK_INTERVAL) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 16}}
processors:
  memory_limiter: {{check_interval: {check_interval}, limit_mib: {limit_mib}, spike_limit_mib: {spike_limit_mib}}}
  tail_sampling:
    decision_wait: {decision_wait}
    num_traces: 1000000
    policies:
      - {{name: all, type: always_sample}}
exporters:
  file: {{path: "{out}", format: proto}}
service:
  telemetry:
    logs: {{level: info}}
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, tail_sampling]
      exporters: [file]
"""


@dataclass
class Offered:
    """What one offering of requests came to (spans)."""

    accepted: int = 0
    refused: int = 0
    failed: int = 0
    codes: dict[str, int] = field(default_factory=dict)


async def offer(endpoint: str, seconds: float, rate: float | None, concurrency: int = 16,
                load: ReferenceLoad | None = None) -> Offered:
    """Send reference requests for ``seconds``: at ``rate`` requests per second, each sent once
    (open loop: a refusal is counted, not retried), or closed-loop when ``rate`` is None (``concurrency``
    requests in flight, each waiting for its answer)."""
    load = load or ReferenceLoad()
    payloads = load.requests(1 << 40)
    result = Offered()
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(METHOD)

        async def one(payload: bytes) -> None:
            try:
                await call(payload, timeout=30)
            except grpc.aio.AioRpcError as e:
                name = e.code().name
                result.codes[name] = result.codes.get(name, 0) + 1
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                    result.refused += SPANS_PER_REQUEST
                else:
                    result.failed += SPANS_PER_REQUEST
            else:
                result.accepted += SPANS_PER_REQUEST

        end = time.monotonic() + seconds
        if rate is None:
            async def worker() -> None:
                while time.monotonic() < end:
                    await one(next(payloads))
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return result
        pending: set[asyncio.Task[None]] = set()
        start, sent = time.monotonic(), 0
        while (now := time.monotonic()) < end:
            due = int((now - start) * rate) - sent
            for _ in range(max(0, due)):
                if len(pending) >= concurrency * 4:
                    break  # the client's own bound: requests beyond it are not offered
                task = asyncio.create_task(one(next(payloads)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(0.005)
        if pending:
            await asyncio.gather(*pending)
    return result


async def first_accepted(endpoint: str, within: float, every: float = PROBE_EVERY) -> float | None:
    """Seconds until one small request is accepted (a probe every ``every`` seconds), None if none is."""
    load = ReferenceLoad()
    payload = next(load.requests(1))
    t0 = time.monotonic()
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(METHOD)
        while time.monotonic() - t0 < within:
            try:
                await call(payload, timeout=10)
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                await asyncio.sleep(every)
            else:
                return time.monotonic() - t0
    return None


class PeakRss:
    """Samples a collector's RSS every 50 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self, collector: Collector) -> None:
        self.peak = collector.rss()
        self._collector = collector
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self._collector.rss())
            except OSError:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def limiter_state(col: Collector) -> dict[str, float]:
    text = col.scrape()
    m = "tracetriage_memory_limiter_"
    return {k: col.metric(m + k, text) for k in ("limit_bytes", "soft_limit_bytes", "baseline_bytes",
                                                    "floor_bytes", "memory_bytes", "refusing", "trims_total")}


def run_one(name: str, limit_mib: int, spike_mib: int, seconds: float, factor: float, workdir: Path) -> dict[str, Any]:
    grpc_port, metrics_port = free_port(), free_port()
    out = workdir / f"{name}.jsonl"
    col = Collector(config(grpc_port, metrics_port, out, limit_mib, spike_mib), workdir, metrics_port)
    endpoint = f"127.0.0.1:{grpc_port}"
    try:
        col.wait_ready()
        idle = col.rss()
        log_start = (workdir / "bench-collector.log").read_text(errors="replace")
        warned = "memory limiter" in log_start and "idle" in log_start and "WARNING" in log_start
        capacity = asyncio.run(offer(endpoint, 5.0, None, concurrency=4))
        rate = capacity.accepted / 5.0 / SPANS_PER_REQUEST * factor
        time.sleep(3.0)  # the calibration's traces drain
        peak = PeakRss(col)
        burst = asyncio.run(offer(endpoint, seconds, rate))
        burst_end = time.monotonic()
        recovery = asyncio.run(first_accepted(endpoint, within=60.0))
        recovered_after = time.monotonic() - burst_end if recovery is not None else None
        time.sleep(4.0)  # the probe's trace and the rest are decided and written
        later = asyncio.run(offer(endpoint, 2.0, None, concurrency=2))
        time.sleep(4.0)
        peak_rss = peak.stop()
        state = limiter_state(col)
        exported_spans = col.metric("otelcol_exporter_sent_spans_total")
        return {
            "scenario": f"overload_{name}", "limit_mib": limit_mib, "spike_limit_mib": spike_mib,
            "idle_rss_mib": round(idle / 2**20), "warned_at_start": warned,
            "capacity_spans_s": round(capacity.accepted / 5.0), "offered_req_s": round(rate, 1),
            "seconds": seconds, "accepted": burst.accepted, "refused": burst.refused, "failed": burst.failed,
            "exported": int(exported_spans),
            "accepted_total": capacity.accepted + burst.accepted + (SPANS_PER_REQUEST if recovery else 0)
            + later.accepted,
            "peak_rss_mib": round(peak_rss / 2**20), "recovery_s": None if recovered_after is None
            else round(recovered_after, 2), "after_recovery_accepted": later.accepted,
            "after_recovery_refused": later.refused, "burst_errors": burst.codes,
            "end_rss_mib": round(col.rss() / 2**20),
            **{f"end_{k}": v for k, v in state.items()},
        }
    finally:
        col.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--factor", type=float, default=3.0)
    p.add_argument("--only", choices=("sized", "near_idle"), action="append")
    p.add_argument("--workdir", type=Path, help="keep the collectors' configs and logs here")
    a = p.parse_args()
    runs = {"sized": (600, 100), "near_idle": (300, 60)}
    with tempfile.TemporaryDirectory(prefix="tracetriage-overload-") as tmp:
        for name, (limit, spike) in runs.items():
            if a.only and name not in a.only:
                continue
            workdir = (a.workdir or Path(tmp)) / name
            workdir.mkdir(parents=True, exist_ok=True)
            emit(run_one(name, limit, spike, a.seconds, a.factor, workdir))


if __name__ == "__main__":
    main()
