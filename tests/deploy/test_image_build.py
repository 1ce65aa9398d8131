"""The image's build steps, run outside Docker (no Docker engine here).

scripts/docker-build-steps.sh is what the Dockerfile's build stage runs. These tests run the same steps into a
fresh venv in a temp dir (pip install of the local source tree and its runtime dependencies from PyPI: slow,
hence the ``slow_build`` marker; deselect with ``-m 'not slow_build'``), then start the installed
``tracetriage`` as the image would, probe it with the Dockerfile's own HEALTHCHECK command (parsed from the
Dockerfile) and stop it with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.deploy.common import ROOT
from tests.deploy.dockerfile import entrypoint_and_cmd, healthcheck

SCRIPT = ROOT / "scripts" / "docker-build-steps.sh"

pytestmark = [pytest.mark.slow_build, pytest.mark.timeout(420)]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a process in the image: no PYTHONPATH or venv of the test run leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``<tmp>/opt/venv`` and ``<tmp>/etc/tracetriage``, built by the script from the source tree."""
    root = tmp_path_factory.mktemp("image")
    venv, etc = root / "opt" / "venv", root / "etc" / "tracetriage"
    env = _clean_env(PYTHON=sys.executable, TMPDIR=str(root))
    for args in (["build", str(venv), str(ROOT)], ["install-config", str(etc), str(ROOT)]):
        proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env,
                              cwd=root, timeout=360)
        assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    yield root


class Started:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.log = cwd / "collector.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self, url: str, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        status = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tracetriage exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                status = e.code  # 503 while starting
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"health endpoint not 200 within {timeout}s (last {status}):\n{self.output()}")

    def sigterm(self, timeout: float = 40.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _run_healthcheck(venv: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command, as Docker runs it in the image (venv first on PATH)."""
    _options, command = healthcheck()
    env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=15)


def _image_env(venv: Path, **extra: str) -> dict[str, str]:
    return _clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", **extra)


def test_installed_package_is_not_the_source_tree(image_root: Path) -> None:
    venv = image_root / "opt" / "venv"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import collector, pipelines; "
                           "print(collector.__file__); print(pipelines.__file__)"],
                          capture_output=True, text=True, env=_clean_env(), cwd=image_root, timeout=30)
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.split():
        assert Path(line).is_relative_to(venv), f"imported from outside the venv: {line}"


def test_image_holds_the_runtime_only(image_root: Path) -> None:
    """The tools (bench/: demo, loadgen) stay out of the image; their commands say so instead of failing."""
    tracetriage = str(image_root / "opt" / "venv" / "bin" / "tracetriage")
    env = _clean_env()
    r = subprocess.run([tracetriage, "loadgen", "--count", "1"], capture_output=True, text=True, env=env,
                       cwd=image_root, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("tracetriage loadgen: not available:") and "No module named 'bench'" in r.stderr
    r = subprocess.run([tracetriage, "--help"], capture_output=True, text=True, env=env, cwd=image_root, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "demo" in r.stdout and "loadgen" in r.stdout and "not available here" in r.stdout


def test_built_venv_serves_health_and_stops_cleanly(image_root: Path) -> None:
    """Start the installed CLI with a small config on free ports; HEALTHCHECK passes; SIGTERM exits 0."""
    venv = image_root / "opt" / "venv"
    health = free_port()
    cfg = image_root / "smoke.yaml"
    cfg.write_text(
        "receivers:\n"
        "  otlp:\n"
        "    protocols:\n"
        f"      grpc: {{endpoint: '127.0.0.1:{free_port()}'}}\n"
        f"      http: {{endpoint: '127.0.0.1:{free_port()}'}}\n"
        "processors:\n"
        "  memory_limiter: {check_interval: 1s, limit_mib: 512}\n"
        "  batch: {}\n"
        "exporters:\n"
        "  debug: {}\n"
        "extensions:\n"
        "  health_check: {endpoint: '${env:TT_HEALTH}'}\n"
        "service:\n"
        "  extensions: [health_check]\n"
        f"  telemetry: {{metrics: {{address: '127.0.0.1:{free_port()}'}}}}\n"
        "  pipelines:\n"
        "    traces: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [debug]}\n"
    )
    env = _image_env(venv, TT_HEALTH=f"127.0.0.1:{health}")
    started = Started([str(venv / "bin" / "tracetriage"), "run", "--config", str(cfg)], env, image_root)
    try:
        assert started.wait_healthy(f"http://127.0.0.1:{health}/") == 200
        hc = _run_healthcheck(venv, env, image_root)
        assert hc.returncode == 0, f"HEALTHCHECK failed ({hc.returncode}):\n{hc.stderr}"
        assert started.sigterm() == 0, started.output()
    finally:
        started.close()
    hc = _run_healthcheck(venv, env, image_root)
    assert hc.returncode != 0, "HEALTHCHECK must fail when nothing answers"


def test_image_default_command_runs_gateway_config(image_root: Path) -> None:
    """The image's ENTRYPOINT + CMD (gateway.yaml with the installed catalog), listen ports moved to free ones
    through the variables gateway.yaml reads; also the build stage's `verify` step."""
    venv, etc = image_root / "opt" / "venv", image_root / "etc" / "tracetriage"
    verify = subprocess.run(["bash", str(SCRIPT), "verify", str(venv), str(etc)], capture_output=True, text=True,
                            env=_clean_env(), cwd=image_root, timeout=60)
    assert verify.returncode == 0, f"verify (the Dockerfile's last build step) failed:\n{verify.stdout}{verify.stderr}"
    argv = [a.replace("/etc/tracetriage", str(etc)) for a in entrypoint_and_cmd()]
    argv[0] = str(venv / "bin" / argv[0])
    health = free_port()
    env = _image_env(
        venv,
        TT_OTLP_GRPC=f"127.0.0.1:{free_port()}", TT_OTLP_HTTP=f"127.0.0.1:{free_port()}",
        TT_METRICS=f"127.0.0.1:{free_port()}", TT_HEALTH=f"127.0.0.1:{health}",
        CATALOG_GLOB=str(etc / "catalog" / "*.yaml"), TRACES_BACKEND=f"127.0.0.1:{free_port()}",
        ALERT_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hook",
    )
    started = Started(argv, env, image_root)
    try:
        assert started.wait_healthy(f"http://127.0.0.1:{health}/") == 200
        hc = _run_healthcheck(venv, env, image_root)
        assert hc.returncode == 0, f"HEALTHCHECK failed ({hc.returncode}):\n{hc.stderr}"
        assert started.sigterm() == 0, started.output()
    finally:
        started.close()
