"""Instructions per span of each in-process phase of the collector's path, counted by valgrind's callgrind:
``python -m bench.instructions [--scenario tail_sampling|full|full_slo|full_servicegraph|full_spanmetrics|
full_trace_tests|full_trace_tests_idle|full_trace_tests_mix|passthrough|root_cause] [--requests 40]
[--latency-threshold 500ms]``.

The throughput figures of :mod:`bench.run` move by a third from one minute to the next on a shared
machine; instruction counts do not (they repeat to within a few per span), so an A/B of a change on the
hot path reads clearly here. Phases, each over the same reference requests in one process (no gRPC, no
broker): ``decode`` (the receiver's validation: the compiled check, or protobuf), ``split`` (the wire walk),
``span_stages`` (span-level processors before the trace buffer, ``servicegraph`` or ``spanmetrics``: only in
the scenarios that have one), ``intake`` (the trace buffer filing traces), ``decide`` (the trace stages of the
scenario's pipeline, as ``bench.run`` configures them; ``--latency-threshold`` gives ``root_cause`` one, for
the latency walk of the reference's slow traces), ``export`` (the Kafka exporter's records). Prints one JSON object per
phase, then ``total``. Instructions are not time (cache misses and page faults are not counted), so confirm
a gain with ``bench.run``. Needs ``valgrind`` on the PATH; ``--no-valgrind`` runs the phases once, for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.harness import emit
from bench.reference import SPANS_PER_REQUEST, ReferenceLoad

PHASES = ("decode", "split", "span_stages", "span_expiry", "intake", "decide", "export")
SPAN_STAGES = ("servicegraph", "spanmetrics")  # measured in the span_stages phase


def phases(scenario: str) -> list[str]:
    """The phases a scenario has (``span_stages`` only where a span-level processor runs, ``span_expiry`` only
    for the service graph)."""
    return [p for p in PHASES if (p != "span_stages" or scenario in ("full_servicegraph", "full_spanmetrics"))
            and (p != "span_expiry" or scenario == "full_servicegraph")]


_profile: Any = None  # --profile: a cProfile.Profile, on while the phases run
_clock: dict[str, float] | None = None  # --cpu-time: thread CPU seconds per phase (and "" for the last mark)


def _control(*args: str) -> None:
    if _profile is not None and args[0] == "-i":
        _profile.enable() if args[1] == "on" else _profile.disable()
    if _clock is not None:
        now = time.thread_time()
        if args[0].startswith("--dump="):
            _clock[args[0].removeprefix("--dump=")] = now - _clock[""]
        _clock[""] = now
    if os.environ.get("TRACETRIAGE_CALLGRIND"):
        subprocess.run(["callgrind_control", *args, str(os.getpid())], capture_output=True, check=False)


def _load(shape: str, seed: int, requests: int) -> tuple[list[bytes], int]:
    """``requests`` requests of ``shape`` (``bench.shapes``; "" for the reference load), and spans a request."""
    if not shape:
        return list(ReferenceLoad(seed=seed).requests(requests)), SPANS_PER_REQUEST
    from bench.shapes import ShapeLoad

    load = ShapeLoad(shape, seed=seed)
    return list(load.requests(requests)), load.spans_per_request


async def _phases(scenario: str, requests: int, latency_threshold: str = "", shape: str = "") -> int:
    """Run the phases (under callgrind: each dumped on its own); returns the spans kept."""
    from bench.run import config
    from collector import Capabilities, ComponentID, Host, Kind, Settings, SpanBatch, Telemetry, TraceStage
    from collector.cli import GC_THRESHOLDS
    from collector.component import buffer_owner
    from collector.config.schema import decode
    from collector.exporters.kafka.marshal import records_by_trace
    from collector.registry import Registry
    from collector.trace_buffer import TraceBuffer
    from collector.wire import SplitOptions, certainly_valid, load_compiled, split_by_trace

    kept = 0

    class Sink:
        """Stands for the Kafka exporter: builds its records by trace and partition."""

        def capabilities(self) -> Capabilities:
            return Capabilities()

        async def consume_traces(self, batch: SpanBatch) -> None:
            nonlocal kept
            records_by_trace(batch.split(), 4, 1 << 20)
            kept += batch.span_count
            batch.release()

    sink = Sink()
    passed: list[SpanBatch] = []

    class Collect:
        """What a span-level processor passes on, kept for the trace buffer's intake."""

        def capabilities(self) -> Capabilities:
            return Capabilities()

        async def consume_traces(self, batch: SpanBatch) -> None:
            passed.append(batch)
    processors: dict[str, Any] = yaml.safe_load(config(scenario, 1, 2, "127.0.0.1:3"))["processors"]
    if latency_threshold and "root_cause" in processors:
        processors["root_cause"]["latency_threshold"] = latency_threshold
    registry = Registry.default(plugins=False)
    telemetry = Telemetry()
    stages: list[tuple[str, Any]] = []
    for name, raw in processors.items():
        factory = registry.get(Kind.PROCESSOR, name)
        assert factory is not None, name
        settings = Settings(ComponentID(name), Kind.PROCESSOR, telemetry, logging.getLogger(name))
        nxt = Collect() if name in SPAN_STAGES else sink
        stages.append((name, factory.create(settings, decode(factory.config_class, raw), nxt)))
    span_stages = [s for n, s in stages if n in SPAN_STAGES]
    host = Host()
    # Exemplars wait for the buffer's decision, as when the service puts the buffer after these stages.
    host.decided_after.update(("", ComponentID(n)) for n, _ in stages if n in SPAN_STAGES)
    # Trace stages are what the trace buffer runs; the scenarios have no other stage on the path measured
    # but ``batch`` (passthrough), which only merges requests: its phases are decode, split and export.
    trace_stages = [(n, s) for n, s in stages if isinstance(s, TraceStage) and s.capabilities().trace_level]
    options = SplitOptions(error_hints=bool(trace_stages),
                           error_attribute=any(s.capabilities().reads_error_attribute for _, s in trace_stages))
    load_compiled()  # as the service does: the compiled wire walk when numba is installed
    buffer = None
    if trace_stages:
        _, owner = buffer_owner(trace_stages)
        buffer = TraceBuffer(Settings(ComponentID("bench"), Kind.PROCESSOR, telemetry, logging.getLogger("bench")),
                             owner.buffer_settings, trace_stages, sink)
    gc.set_threshold(*GC_THRESHOLDS)
    check = certainly_valid  # the receivers' check: compiled when certain, else protobuf
    json_body = bool(shape) and shape == "json"
    if json_body:  # OTLP/JSON: the receiver's decode is the encoding to protobuf bytes
        from collector.otlpjson import request_bytes
    warm_load, _ = _load(shape, 99, 4)
    for warm in warm_load:
        if json_body:
            warm = request_bytes(warm)
        elif not check(warm):
            ExportTraceServiceRequest.FromString(warm)
        split_by_trace(warm, options)
    load, spans_per_request = _load(shape, 1, requests)
    for stage in span_stages:  # (listeners, the endpoint: started before counting)
        await stage.start(host)
    if buffer is not None:
        buffer._listeners = host.outcome_listeners  # as start(host) would, without its ticker and sender
    _control("-i", "on")
    if json_body:
        load = [request_bytes(body) for body in load]
    else:
        for payload in load:
            if not check(payload):
                ExportTraceServiceRequest.FromString(payload)
    _control("--dump=decode")
    splits = [split_by_trace(payload, options) for payload in load]
    _control("--dump=split")
    batches = [SpanBatch(payload=p, span_count=spans_per_request, split=s, split_options=options)
               for p, s in zip(load, splits, strict=True)]
    for stage in span_stages:
        for b in batches:
            await stage.consume_traces(b)
        batches, passed[:] = list(passed), []
    if span_stages:
        _control("--dump=span_stages")
    expiring = [s for s in span_stages if hasattr(s, "expire")]  # the service graph: every waiting edge expires
    for stage in expiring:
        stage.expire(time.monotonic() + 86400.0)
    if expiring:
        _control("--dump=span_expiry")
    if buffer is None:
        _control("--dump=intake")
        _control("--dump=decide")
        for batch in batches:
            await sink.consume_traces(batch)
    else:
        for batch in batches:
            await buffer.consume_traces(batch)
        _control("--dump=intake")
        traces = list(buffer._pending.values())
        buffer._pending.clear()
        buffer._arrivals.clear()
        await buffer._decide(traces)
        _control("--dump=decide")
        while buffer._outbox:
            await sink.consume_traces(buffer._outbox.popleft())
    _control("--dump=export")
    _control("-i", "off")
    for stage in span_stages:
        await stage.shutdown()
    return kept


def _totals(directory: Path) -> dict[str, int]:
    """Instructions per dumped phase, from callgrind's output files (``totals:`` of each dump)."""
    out: dict[str, int] = {}
    for path in sorted(directory.glob("cg.out.*"), key=lambda p: int(p.suffix[1:])):
        name = total = None
        for line in path.read_text().splitlines():
            if line.startswith("desc: Trigger:"):
                name = line.rsplit(" ", 1)[-1].removeprefix("--dump=")
            elif line.startswith("totals:"):
                total = int(line.split()[1])
        if name in PHASES and total is not None:
            out[name] = total
    return out


def _cpu_time(scenario: str, requests: int, rounds: int, latency_threshold: str = "", shape: str = "") -> None:
    """Each phase's thread CPU time per span (ns), the median of ``rounds`` fresh processes."""
    env = dict(os.environ, TRACETRIAGE_CPU_TIME="1")
    runs: list[dict[str, float]] = []
    for _ in range(rounds):
        r = subprocess.run([sys.executable, "-m", "bench.instructions", "--no-valgrind", "--scenario", scenario,
                            "--requests", str(requests), "--latency-threshold", latency_threshold,
                            "--shape", shape], env=env, check=True, capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent.parent)
        runs.append(json.loads(r.stdout.splitlines()[-1])["cpu_seconds"])
    spans = requests * (_load(shape, 1, 1)[1] if shape else SPANS_PER_REQUEST)
    extra = {"shape": shape} if shape else {}
    for phase in [*phases(scenario), "total"]:
        values = [sum(run.values()) if phase == "total" else run.get(phase, 0.0) for run in runs]
        emit({"bench": "instructions", "scenario": scenario, **extra, "phase": phase, "cpu_ns_per_span":
              round(statistics.median(values) / spans * 1e9), "rounds": [round(v / spans * 1e9) for v in values]})


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="full", choices=["passthrough", "tail_sampling", "full", "full_slo",
                                                                  "root_cause", "full_trace_tests",
                                                                  "full_trace_tests_idle", "full_trace_tests_mix",
                                                                  "full_servicegraph",
                                                                  "full_spanmetrics"])
    p.add_argument("--latency-threshold", default="", metavar="DURATION",
                   help="root_cause's latency_threshold (default: none, as bench.run configures it)")
    p.add_argument("--requests", type=int, default=40, help="reference requests of 500 spans")
    p.add_argument("--shape", default="", help="requests of this bench.shapes shape instead of the reference's")
    p.add_argument("--profile", action="store_true", help="run the phases once under cProfile, print the top")
    p.add_argument("--no-valgrind", action="store_true", help="run the phases once without counting")
    p.add_argument("--cpu-time", type=int, default=0, metavar="ROUNDS",
                   help="no valgrind: thread CPU time per span of each phase, the median of ROUNDS processes")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.profile:
        import cProfile
        import pstats

        global _profile
        _profile = cProfile.Profile()
        asyncio.run(_phases(a.scenario, a.requests, a.latency_threshold, a.shape))
        pstats.Stats(_profile).sort_stats("tottime").print_stats(25)
        return
    if a.cpu_time:
        _cpu_time(a.scenario, a.requests, a.cpu_time, a.latency_threshold, a.shape)
        return
    if a.child or a.no_valgrind:
        if a.no_valgrind and os.environ.get("TRACETRIAGE_CPU_TIME"):
            global _clock
            _clock = {"": 0.0}
        kept = asyncio.run(_phases(a.scenario, a.requests, a.latency_threshold, a.shape))
        if _clock is not None:
            emit({"bench": "instructions", "scenario": a.scenario, "cpu_seconds": {
                k: v for k, v in _clock.items() if k in PHASES}})
            return
        if a.no_valgrind:
            emit({"bench": "instructions", "scenario": a.scenario, "phases": phases(a.scenario), "kept_spans": kept})
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench.instructions needs valgrind (callgrind) on the PATH")
    spans = a.requests * (_load(a.shape, 1, 1)[1] if a.shape else SPANS_PER_REQUEST)
    extra: dict[str, str] = {"latency_threshold": a.latency_threshold} if a.latency_threshold else {}
    if a.shape:
        extra["shape"] = a.shape
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TRACETRIAGE_CALLGRIND="1")
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/cg.out",
                        sys.executable, "-m", "bench.instructions", "--child", "--scenario", a.scenario,
                        "--requests", str(a.requests), "--latency-threshold", a.latency_threshold,
                        "--shape", a.shape], env=env,
                       check=True, capture_output=True,
                       cwd=Path(__file__).resolve().parent.parent)
        totals = _totals(Path(tmp))
    for phase in phases(a.scenario):
        emit({"bench": "instructions", "scenario": a.scenario, **extra, "phase": phase,
              "per_span": round(totals.get(phase, 0) / spans)})
    emit({"bench": "instructions", "scenario": a.scenario, **extra, "phase": "total",
          "per_span": round(sum(totals.values()) / spans)})


if __name__ == "__main__":
    main()
