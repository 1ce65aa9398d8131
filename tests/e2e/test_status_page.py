"""The status page in a real browser while ``tracetriage demo`` runs its load and its fault: headless Chromium
(Debian's ``chromium``, installed by scripts/bootstrap) driven by Playwright through the system executable.

Every panel shows live data, a screenshot of each is saved (the directory is printed, under artifacts/),
views are links, the page reloads itself, nothing logs a console error; the trace lookup finds a kept trace
and a dropped one sent by the test (when the build has a trace lookup; otherwise the box says what it needs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode

from pipelines.tail_sampling.policies.probabilistic import DEFAULT_HASH_SALT, fnv1a_64, threshold
from tests.conftest import ROOT, wait_for

ARTIFACTS = ROOT / "artifacts" / "status-page"
PANELS = ("pipelines", "buffers", "sampling", "rootcauses", "alerts", "slos", "lookup")
NO_LOOKUP = "trace lookup needs service.telemetry.debug"


def _api(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())


class _Ids(IdGenerator):
    """Trace ids chosen by the test (span ids from a counter)."""

    def __init__(self, trace_id: int) -> None:
        self._trace_id = trace_id
        self._span = 0

    def generate_span_id(self) -> int:
        self._span += 1
        return self._span

    def generate_trace_id(self) -> int:
        return self._trace_id


def _dropped_trace_id() -> bytes:
    """A trace id the demo's 5 % probabilistic policy does not sample (its hash is above the threshold)."""
    salt = fnv1a_64(DEFAULT_HASH_SALT.encode())
    limit = threshold(0.05)
    for n in range(1, 1000):
        tid = (0x5EED_0000_0000_0000_0000_0000_0000_0000 + n).to_bytes(16, "big")
        if fnv1a_64(tid, salt) > limit:
            return tid
    raise AssertionError("no trace id above the threshold")


def _send(endpoint: str, trace_id: bytes, error: bool) -> None:
    """One short trace (a root span and a child) with this id: in error, or fine and fast."""
    provider = TracerProvider(resource=Resource.create({"service.name": "status-page-test"}),
                              id_generator=_Ids(int.from_bytes(trace_id, "big")))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("status-page-test")
    now = time.time_ns()
    root = tracer.start_span("GET /lookup-me", start_time=now)
    child = tracer.start_span("work", context=trace_api.set_span_in_context(root), start_time=now + 1000)
    if error:
        child.set_status(Status(StatusCode.ERROR, "failed on purpose"))
        root.set_status(Status(StatusCode.ERROR, "failed on purpose"))
    child.end(end_time=now + 2_000_000)
    root.end(end_time=now + 3_000_000)
    provider.shutdown()


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.out = workdir / "demo.stdout"
        self._file = open(self.out, "wb")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "collector", "demo", "--duration", "600", "--ui-port",
                                      "0"], cwd=workdir, stdout=self._file, stderr=subprocess.STDOUT, env=env)
        text = ""
        deadline = time.monotonic() + 60
        while not (m := re.search(r"status page: (http://127\.0\.0\.1:\d+/)", text)) or "OTLP gRPC" not in text:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the demo did not print its status page URL:\n{text}")
            time.sleep(0.1)
            text = self.out.read_text(errors="replace")
        self.url = m.group(1)
        grpc = re.search(r"OTLP gRPC (127\.0\.0\.1:\d+)", text)
        assert grpc is not None
        self.otlp = grpc.group(1)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()
        return self.out.read_text(errors="replace")


def _accepting(base: str) -> bool:
    try:
        return bool(_api(base, "api/v1/pipelines")["pipelines"][0]["receivers"][0]["accepted"] > 0)
    except OSError:
        return False


def _live(base: str) -> bool:
    """Every panel has data: rates, decisions, a root cause, an open alert group, burn-rate history."""
    s = _api(base, "api/v1/status")
    return (s["pipelines"]["rate_window"] is not None
            and s["sampling"]["processors"][0]["decisions"]["5m"]["sampled"] > 0
            and bool(s["rootcauses"]["processors"][0]["causes"])
            and s["alerts"]["processors"][0]["open_groups"] > 0
            and all(len(o["history"]) >= 3 for o in s["slos"]["processors"][0]["objectives"]))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, bytes, bytes]]:
    d = Demo(tmp_path_factory.mktemp("demo"))
    try:
        kept, dropped = bytes.fromhex("5eed00000000000000000000000000e1"), _dropped_trace_id()
        wait_for(lambda: _accepting(d.url), timeout=60, interval=0.5)  # the receiver is up: the load arrives
        _send(d.otlp, kept, error=True)
        _send(d.otlp, dropped, error=False)
        wait_for(lambda: _live(d.url), timeout=90, interval=1.0)
        yield d, kept, dropped
    finally:
        out = d.stop()
    assert "Traceback" not in out, out[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the chromium executable is missing: scripts/bootstrap test installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page whose console errors, page errors and failed requests are collected in ``page.problems``."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    pg.problems = problems
    try:
        yield pg
    finally:
        context.close()


@pytest.mark.timeout(240)
def test_every_panel_shows_live_data_during_the_demo(demo: tuple[Demo, bytes, bytes], page: Any) -> None:
    d, _, _ = demo
    response = page.goto(d.url)
    assert response is not None and response.status == 200
    assert page.title() == "tracetriage status"
    section = {name: page.locator(f"section#{name}") for name in PANELS}

    pipe = section["pipelines"]
    assert pipe.locator("svg.pipeline").count() == 1
    text = pipe.inner_text()
    assert "rates over the last" in text
    rates = [float(x) for x in re.findall(r"in ([\d.]+)k?/s", pipe.locator("svg").text_content() or "")]
    assert rates and max(rates) > 0, "no span rate on the pipeline picture"
    for box in ("receiver otlp", "trace buffer", "root_cause", "slo", "alert_routing", "tail_sampling", "batch",
                "exporter kafka"):
        assert box in (pipe.locator("svg").text_content() or ""), box

    buffers = section["buffers"].inner_text()
    assert "root_cause, slo, alert_routing, tail_sampling" in buffers
    row = section["buffers"].locator("tbody tr").first.locator("td").all_inner_texts()
    assert int(row[2].replace("k", "000").split(".")[0]) > 0  # traces held while the load runs

    sampling = section["sampling"]
    assert sampling.locator("svg.bars rect").count() > 6
    kept_5m = sampling.locator("tbody tr").first.locator("td").nth(1).inner_text()
    assert float(kept_5m.rstrip("k")) > 0, kept_5m

    causes = section["rootcauses"]
    assert "orders-db" in causes.inner_text()
    assert causes.locator("a.trace").count() >= 2

    alerts = section["alerts"].inner_text()
    assert re.search(r"\b[1-9]\d* open groups", alerts)
    assert "team-pager" in alerts and "data" in alerts

    slos = section["slos"]
    assert slos.locator("svg.chart polyline").count() >= 2
    assert "dominant cause over 1m: orders-db" in slos.inner_text()

    assert section["lookup"].locator("input[name=trace_id]").count() == 1

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"status page screenshots: {ARTIFACTS}")
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    for name, loc in section.items():
        path = ARTIFACTS / f"{name}.png"
        loc.screenshot(path=str(path))
        assert path.stat().st_size > 1000, path
    assert page.problems == []


@pytest.mark.timeout(120)
def test_the_page_reloads_itself_and_views_are_links(demo: tuple[Demo, bytes, bytes], page: Any) -> None:
    d, _, _ = demo
    page.goto(d.url)
    before = page.locator("header").inner_text()
    with page.expect_event("load", timeout=15_000):  # the meta refresh (5 s)
        pass
    assert page.locator("header").inner_text() != before  # uptime moved on
    page.click("nav >> text=Alerts")
    assert page.url == d.url + "view/alerts"
    assert page.locator("section").count() == 1 and page.locator("section#alerts").count() == 1
    page.goto(d.url + "view/rootcauses")
    link = page.locator("section#rootcauses a.trace").first
    trace_id = link.inner_text()
    link.click()
    assert page.url == f"{d.url}lookup?trace_id={trace_id}"
    assert page.locator("input[name=trace_id]").input_value() == trace_id
    assert page.locator("#lookup-result").count() == 1
    assert page.problems == []


@pytest.mark.timeout(120)
def test_trace_lookup_finds_a_kept_and_a_dropped_trace(demo: tuple[Demo, bytes, bytes], page: Any) -> None:
    d, kept, dropped = demo
    assert _api(d.url, "api/v1/status")["about"]["trace_lookup"]  # the demo turns service.telemetry.debug on

    def decided(trace_id: bytes) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            try:
                found: dict[str, Any] = _api(d.url, f"api/v1/traces/{trace_id.hex()}")
                if found.get("state") == "decided":
                    return found
            except urllib.error.HTTPError as e:
                if e.code != 404:  # 404: not seen yet
                    raise
            assert time.monotonic() < deadline, f"trace {trace_id.hex()} was not decided within 60 s"
            time.sleep(0.5)

    found = decided(kept)
    assert (found["decision"], found["kept"]) == ("sampled", True), found
    found = decided(dropped)
    assert (found["decision"], found["kept"]) == ("not_sampled", False), found
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(d.url)
    page.fill("input[name=trace_id]", kept.hex())
    page.click("text=look up")
    assert page.url == f"{d.url}lookup?trace_id={kept.hex()}"
    page.screenshot(path=str(ARTIFACTS / "lookup-kept.png"), full_page=True)
    rows = page.locator("#lookup-result").inner_text()
    assert "sampled" in rows and "not_sampled" not in rows, rows
    page.fill("input[name=trace_id]", dropped.hex())
    page.click("text=look up")
    page.screenshot(path=str(ARTIFACTS / "lookup-dropped.png"), full_page=True)
    rows = page.locator("#lookup-result").inner_text()
    assert "not_sampled" in rows, rows
    assert page.problems == []
