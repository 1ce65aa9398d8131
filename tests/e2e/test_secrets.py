"""A secrets sweep over a real collector process: no secret of its config reaches the logs, the debug
exporter's output, a /metrics scrape or ``tracetriage validate`` (valid and invalid configs).

The config carries a webhook URL with a basic-auth password and a path token, a PagerDuty routing key,
otlphttp exporter headers (Authorization, X-Api-Key); the invalid config an endpoint password. The webhook and the
exporter fail first (500 / 503, so retries are logged with their errors) and then redirect to a second
server on 127.0.0.1 (another origin), which must receive nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from tests.conftest import ROOT, free_port, wait_for

HOOK_PASSWORD = "hookpass-5ecret"
PATH_TOKEN = "pathtok-5ecret-0123456789ab"
ROUTING_KEY = "pdkey-5ecret-fedcba9876"
BEARER = "bearer-5ecret-token"
API_KEY = "apikey-5ecret-value"
EXPORTER_PASSWORD = "exppass-5ecret"
SECRETS = (HOOK_PASSWORD, PATH_TOKEN, ROUTING_KEY, BEARER, API_KEY, EXPORTER_PASSWORD)


class Server(ThreadingHTTPServer):
    """Records every POST (path, headers); answers per path prefix from a script, then 202."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str]]] = []
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.posts.append((self.path, dict(self.headers)))
                status, headers = 202, {"Content-Type": "application/json"}
                for prefix, answers in server.script.items():
                    if self.path.startswith(prefix) and answers:
                        status, headers = answers.pop(0) if len(answers) > 1 else answers[0]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def at(self, prefix: str) -> list[tuple[str, dict[str, str]]]:
        return [p for p in self.posts if p[0].startswith(prefix)]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def write_config(path: Path, server: Server, http_port: int, metrics_port: int, *, invalid: bool = False) -> Path:
    host = server.url.removeprefix("http://")
    hook_url = f"http://alerts:{HOOK_PASSWORD}@{host}/hooks/{PATH_TOKEN}"
    pd_url = f"{server.url}/pd"
    endpoint = f"{server.url}/otlp"  # credentials in Authorization (aiohttp refuses both at once)
    pd_extra = "insecure: true"
    api_key = f'"{API_KEY}"'
    if invalid:  # each secret sits in a value the validator refuses or next to one
        hook_url = f"ftp://alerts:{HOOK_PASSWORD}@{host}/hooks/{PATH_TOKEN}"
        endpoint = f"ftp://otel:{EXPORTER_PASSWORD}@{host}/otlp"
        pd_extra = "insecure: false"
        api_key = f'{{value: "{API_KEY}"}}'  # a mapping where a string belongs
    path.write_text(f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{http_port}"}}
processors:
  root_cause: {{decision_wait: 500ms}}
  alert_routing:
    decision_wait: 500ms
    group_wait: 100ms
    group_interval: 1s
    route:
      receiver: hook
      routes:
        - {{matchers: ['service=~".+"'], receiver: hook, continue: true}}
        - {{matchers: ['service=~".+"'], receiver: pager}}
    receivers:
      - name: hook
        webhook:
          url: "{hook_url}"
          headers: {{X-Api-Key: "{API_KEY}"}}
        retry: {{initial_interval: 100ms, max_interval: 200ms, max_elapsed_time: 10s}}
      - name: pager
        pagerduty: {{url: "{pd_url}", routing_key: "{ROUTING_KEY}", {pd_extra}}}
exporters:
  debug: {{verbosity: detailed}}
  otlphttp:
    endpoint: "{endpoint}"
    headers: {{Authorization: "Bearer {BEARER}", X-Api-Key: {api_key}}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 200ms, max_elapsed_time: 10s}}
service:
  telemetry:
    logs: {{level: debug}}
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [root_cause, alert_routing]
      exporters: [debug, otlphttp]
""")
    return path


def failing_trace() -> bytes:
    trace_id, root, child = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]}
    spans = [
        {"traceId": trace_id, "spanId": root, "name": "POST /checkout", "kind": 2,
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
         "status": {"code": 2}},
        {"traceId": trace_id, "spanId": child, "parentSpanId": root, "name": "charge", "kind": 1,
         "startTimeUnixNano": "1700000000010000000", "endTimeUnixNano": "1700000000090000000",
         "status": {"code": 2}},
    ]
    doc = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    return json.dumps(doc).encode()


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", "validate", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


def assert_no_secret(where: str, text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}:\n{text}"


@pytest.mark.timeout(120)
def test_no_secret_reaches_logs_metrics_debug_output_or_validate(tmp_path: Path, collector_factory) -> None:
    server, elsewhere = Server(), Server()
    try:
        moved = {"Location": f"{elsewhere.url}/stolen"}
        server.script = {
            "/hooks/": [(500, {}), (307, moved)],
            "/otlp/": [(503, {"Retry-After": "0"}), (307, moved)],
        }
        http_port, metrics_port = free_port(), free_port()
        config = write_config(tmp_path / "collector.yaml", server, http_port, metrics_port)

        checked = validate(config)
        assert checked.returncode == 0, checked.stderr
        assert_no_secret("validate (valid config)", checked.stdout + checked.stderr)

        col = collector_factory([config], metrics_port)
        col.wait_ready()
        request = Request(f"http://127.0.0.1:{http_port}/v1/traces", data=failing_trace(),
                          headers={"Content-Type": "application/json"})
        with urlopen(request, timeout=10) as answer:
            assert answer.status == 200

        wait_for(lambda: len(server.at("/hooks/")) >= 2 and len(server.at("/otlp/")) >= 2 and server.at("/pd"),
                 timeout=30)
        wait_for(lambda: "another origin" in col.stderr and col.stderr.count("another origin") >= 2, timeout=10)
        scrape = col.metrics()
        assert col.metric("tracetriage_alerts_sent_total", receiver="hook", status="failed") == 1
        assert col.metric("tracetriage_alerts_sent_total", receiver="pager", status="sent") == 1
        assert col.terminate() == 0
        stderr = col.stderr + col.stdout_path.read_text(errors="replace")

        # The secrets went where they belong, and only there.
        _, hook_headers = server.at("/hooks/")[0]
        assert hook_headers["Authorization"].startswith("Basic ") and hook_headers["X-Api-Key"] == API_KEY
        _, otlp_headers = server.at("/otlp/")[0]
        assert otlp_headers["Authorization"] == f"Bearer {BEARER}" and otlp_headers["X-Api-Key"] == API_KEY
        assert elsewhere.posts == []  # neither the alert nor the batch followed the redirect

        # What was printed: retries and the refused redirects are logged, the debug exporter wrote the
        # spans, and no secret is in any of it.
        assert "retrying" in stderr and "answered HTTP 500" in stderr
        assert "POST /checkout" in stderr  # the debug exporter's detailed output
        assert "[REDACTED]" in stderr or "http://127.0.0.1" in stderr
        assert_no_secret("the collector's output", stderr)
        assert_no_secret("/metrics", scrape)

        broken = write_config(tmp_path / "broken.yaml", server, http_port, metrics_port, invalid=True)
        refused = validate(broken)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        for key in ("processors.alert_routing.receivers[0].webhook.url",
                    "processors.alert_routing.receivers[1].pagerduty.url",
                    "exporters.otlphttp.endpoint",
                    "exporters.otlphttp.headers.X-Api-Key"):
            assert key in refused.stderr, refused.stderr
        assert_no_secret("validate (invalid config)", refused.stdout + refused.stderr)
    finally:
        server.close()
        elsewhere.close()
