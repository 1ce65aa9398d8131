"""The status page behind the same authenticator extensions as the receivers: a real collector (the CLI in a
subprocess) with ``service.telemetry.ui.auth``; requests without, with wrong and with right credentials."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CollectorProcess, free_port

TOKEN = "ui-T0KEN-5ecret-42"  # made up; it must never show in the logs


def fetch(url: str, token: str | None = None) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.mark.timeout(120)
def test_the_page_and_its_api_need_the_authenticator_s_credentials(tmp_path: Path) -> None:
    grpc_port, ui_port = free_port(), free_port()
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
extensions:
  bearertokenauth/ui: {{token: "{TOKEN}"}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
  tail_sampling:
    decision_wait: 500ms
    policies: [{{name: all, type: always_sample}}]
exporters:
  debug: {{}}
service:
  extensions: [bearertokenauth/ui]
  telemetry:
    metrics: {{address: ""}}
    ui: {{endpoint: "127.0.0.1:{ui_port}", auth: {{authenticator: bearertokenauth/ui}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling], exporters: [debug]}}
""")
    col = CollectorProcess([cfg], tmp_path)
    try:
        col.wait_ready()
        base = f"http://127.0.0.1:{ui_port}"
        for path in ("/", "/view/pipelines", "/api/v1/pipelines", "/api/v1/status"):
            status, headers, body = fetch(base + path)
            assert status == 401, (path, status)
            assert headers.get("WWW-Authenticate", "").startswith("Bearer"), headers
            assert fetch(base + path, "wrong-token")[0] == 401
            status, _, body = fetch(base + path, TOKEN)
            assert status == 200, (path, body)
        status_cmd = [sys.executable, "-m", "collector", "status", "--endpoint", f"127.0.0.1:{ui_port}"]
        refused = subprocess.run(status_cmd, capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 1 and "401" in refused.stderr and "--token-file" in refused.stderr
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        ok = subprocess.run([*status_cmd, "--token-file", str(token_file)], capture_output=True, text=True,
                            timeout=60, check=False)
        assert ok.returncode == 0, ok.stderr
        assert TOKEN not in ok.stdout + ok.stderr
    finally:
        col.terminate()
        col.stop()
    assert TOKEN not in col.stderr + col.stdout_path.read_text()


def test_an_authenticator_that_is_not_running_stops_the_start(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{free_port()}"}}
exporters:
  debug: {{}}
service:
  telemetry:
    metrics: {{address: ""}}
    ui: {{endpoint: "127.0.0.1:{free_port()}", auth: {{authenticator: bearertokenauth/missing}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
""")
    col = CollectorProcess([cfg], tmp_path)
    try:
        assert col.proc.wait(60) != 0
    finally:
        col.stop()
    out = col.stderr
    assert "service.telemetry.ui" in out and "bearertokenauth/missing" in out, out
