"""A connection flood on the OTLP/HTTP port of a collector limited to 1,024 open files.

2,000 idle connections would exhaust the process's descriptors. The listener holds at most
``max_connections`` (by default half the open-file limit) and closes the rest as they come, so health and
``/metrics``, on listeners of their own, keep answering, and OTLP/HTTP serves again once the flood ends.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.harness import open_files_limited
from tests.collector.receivers.test_otlp_support import make_request
from tests.conftest import ROOT, free_port, wait_for

NOFILE = 1024
FLOOD = 2000


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read()


def metric(text: str, name: str) -> float:
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def post_spans(port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=make_request(2).SerializeToString(),
                                     headers={"Content-Type": "application/x-protobuf"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        return int(resp.status)


def serves(port: int) -> bool:
    try:
        return post_spans(port) == 200
    except OSError:
        return False


@pytest.mark.timeout(120)
def test_health_and_metrics_answer_while_otlp_http_is_flooded(tmp_path: Path) -> None:
    http_port, health_port, metrics_port = free_port(), free_port(), free_port()
    config = tmp_path / "collector.yaml"
    config.write_text(f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{http_port}"}}
exporters:
  debug: {{verbosity: basic}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{health_port}"}}
service:
  extensions: [health_check]
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
""")
    stderr_path = tmp_path / "collector.stderr"
    with open(stderr_path, "wb") as stderr:
        args = [sys.executable, "-m", "collector", "run", "--config", str(config)]
        proc = subprocess.Popen(open_files_limited(args, NOFILE), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    flood: list[socket.socket] = []
    try:
        wait_for(lambda: "Everything is ready" in stderr_path.read_text(errors="replace") or proc.poll() is not None,
                 timeout=60)
        assert proc.poll() is None, stderr_path.read_text(errors="replace")
        assert "max_connections 512" in stderr_path.read_text(errors="replace")
        assert post_spans(http_port) == 200

        flood.extend(socket.create_connection(("127.0.0.1", http_port), timeout=5) for _ in range(FLOOD))
        time.sleep(0.5)

        status, body = get(f"http://127.0.0.1:{health_port}/")
        assert status == 200 and json.loads(body)["status"] == "Server available"
        status, body = get(f"http://127.0.0.1:{metrics_port}/metrics")
        text = body.decode()
        assert metric(text, "tracetriage_receiver_http_open_connections") == NOFILE // 2
        assert metric(text, "tracetriage_receiver_http_connections_refused_total") >= FLOOD - NOFILE // 2
        log = stderr_path.read_text(errors="replace")
        assert log.count("connections refused past max_connections") == 1
        assert "Traceback" not in log

        for s in flood:
            s.close()
        flood.clear()
        wait_for(lambda: serves(http_port), timeout=10)
        assert proc.poll() is None
    finally:
        for s in flood:
            s.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
