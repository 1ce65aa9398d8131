"""Shared test helpers: free ports, a collector started through the CLI as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import open_files_limited

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CollectorProcess:
    """``python -m collector run --config ...`` with its output captured to files."""

    def __init__(self, configs: list[Path], workdir: Path, metrics_port: int | None = None,
                 env: dict[str, str] | None = None, extra_args: list[str] | None = None,
                 open_files: int | None = None) -> None:
        self.configs = configs
        self.metrics_port = metrics_port
        self.stdout_path = workdir / "collector.stdout"
        self.stderr_path = workdir / "collector.stderr"
        args = [sys.executable, "-m", "collector", "run"]
        for c in configs:
            args += ["--config", str(c)]
        args += extra_args or []
        full_env = {**os.environ, **(env or {})}
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115 - closed in stop()
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(open_files_limited(args, open_files), stdout=self._out, stderr=self._err,
                                     cwd=ROOT, env=full_env)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until /metrics answers (the service starts it first and components right after)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited with {self.proc.returncode}:\n{self.stderr}")
            if "Everything is ready" in self.stderr:
                return
            time.sleep(0.05)
        raise AssertionError(f"collector not ready within {timeout}s:\n{self.stderr}")

    def metrics(self) -> str:
        assert self.metrics_port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric_name, _, label_text = head.partition("{")
            if metric_name != name:
                continue
            if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                total += float(value)
        return total

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


@pytest.fixture
def collector_factory(tmp_path: Path) -> Iterator[type[CollectorProcess]]:
    started: list[CollectorProcess] = []

    def make(configs: list[Path], metrics_port: int | None = None,
             env: dict[str, str] | None = None) -> CollectorProcess:
        cp = CollectorProcess(configs, tmp_path, metrics_port, env)
        started.append(cp)
        return cp

    yield make  # type: ignore[misc]
    for cp in started:
        cp.stop()


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels() -> None:
    """Compile the numba kernels (wire walk, span-derived metrics) once, before any test starts a collector:
    on a fresh checkout a cold compile inside a collector subprocess could outlast its start-up wait. Later
    processes load them from numba's on-disk cache. (Nothing happens without numba or with TRACETRIAGE_JIT=0.)"""
    from pipelines.exposition.columns import compile_all

    compile_all()
