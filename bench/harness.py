"""Benchmark plumbing: a collector subprocess, its CPU time and memory from /proc, its /metrics, a tansu
broker, and a load process sending reference requests over OTLP gRPC."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def emit(record: dict[str, object]) -> None:
    """One JSON object per line on stdout: the benchmark's output format."""
    print(json.dumps(record), flush=True)


def open_files_limited(args: list[str], limit: int | None) -> list[str]:
    """``args`` run with ``ulimit -n limit`` (by a shell that then becomes the command: the process is the
    command's). Not a ``preexec_fn``: in a process where gRPC is active, a fork that runs Python before
    ``exec`` lets grpcio restart its poller in the child, whose epoll descriptor the child then closes, and the
    child aborts before it starts (grpc/grpc#43055, grpcio 1.80 and later)."""
    if limit is None:
        return args
    return ["/bin/sh", "-c", f'ulimit -n {int(limit)} && exec "$@"', "sh", *args]


class Collector:
    def __init__(self, config_text: str, workdir: Path, metrics_port: int, open_files: int | None = None) -> None:
        self.config = workdir / "bench-collector.yaml"
        self.config.write_text(config_text)
        self.metrics_port = metrics_port
        self.log = open(workdir / "bench-collector.log", "wb")  # noqa: SIM115 - closed in stop()
        args = [sys.executable, "-m", "collector", "run", "--config", str(self.config)]
        self.proc = subprocess.Popen(open_files_limited(args, open_files), stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=ROOT)
        self._log_path = workdir / "bench-collector.log"

    def wait_ready(self, timeout: float = 90) -> None:  # (a cold numba compile on a fresh checkout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {self._log_path.read_text()[-3000:]}")
            if b"Everything is ready" in self._log_path.read_bytes():
                return
            time.sleep(0.05)
        raise RuntimeError("collector did not start")

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text: str = r.read().decode()
        return text

    def metric(self, name: str, text: str | None = None, **labels: str) -> float:
        """Sum of the samples of ``name`` with ``labels``, from ``text`` (one scrape) or a new scrape."""
        if text is None:
            text = self.scrape()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                head, _, value = line.rpartition(" ")
                metric_name = head.partition("{")[0]
                if metric_name == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
                    total += float(value)
        return total

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def tansu() -> contextlib.AbstractContextManager[str]:
    """A tansu broker (memory storage) on a free port, as the demo starts it; yields its address."""
    from bench.demo.run import embedded_broker

    return embedded_broker()


def run_sender(endpoint: str, requests: int, concurrency: int = 8) -> dict[str, float]:
    """Send ``requests`` reference requests from a separate process; returns its stats."""
    out = subprocess.run([sys.executable, "-m", "bench.sender", "--endpoint", endpoint, "--requests", str(requests),
                          "--concurrency", str(concurrency)], capture_output=True, text=True, cwd=ROOT, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
