"""Shared helpers for the config tests: the CLI run in a child process, measured.

:func:`measured_cli` runs ``tracetriage <args>`` in a child Python that has already imported the CLI and
built the component registry, so what it times is the command itself; it reports the command's time
and the child's resident memory before and at its peak, and the parent reads the child's own peak
with ``os.wait4`` (its rusage alone, not that of every child the test process ever had).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "data" / "configs"

_HARNESS = r"""
import json, resource, sys, time
from collector import cli
from collector.registry import Registry
Registry.default()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    code = cli.main(sys.argv[1:])
except SystemExit as e:  # argparse's usage errors
    code = e.code if isinstance(e.code, int) else 2
seconds = time.perf_counter() - t0
sys.stdout.write("\n" + json.dumps({"code": code, "seconds": seconds, "rss_before_kib": before}) + "\n")
sys.stdout.flush()
sys.exit(code)
"""


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # the command alone, measured in the child
    rss_before_mib: float  # the child's peak RSS before the command (interpreter and imports)
    rss_peak_mib: float  # the child's peak RSS over its whole life (os.wait4)

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_peak_mib - self.rss_before_mib


def measured_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Measured:
    """``tracetriage <args>`` in a child process; time and memory of the command itself."""
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", _HARNESS, *args], stdout=out, stderr=err, cwd=ROOT,
                                env=full_env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode} (timeout {timeout}s?):\n{stderr}"
    head, _, last = stdout.rstrip("\n").rpartition("\n")
    report = json.loads(last)
    assert report["code"] == proc.returncode
    return Measured(proc.returncode, head, stderr, report["seconds"], report["rss_before_kib"] / 1024,
                    usage.ru_maxrss / 1024)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The ``tracetriage`` command as users run it."""
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})
