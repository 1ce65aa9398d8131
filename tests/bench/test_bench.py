"""The benchmark suite runs (short mode) and emits every figure, one JSON object per line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.timeout(400)
def test_bench_short_mode_emits_every_figure() -> None:
    r = subprocess.run([sys.executable, "-m", "bench.run", "--short"], cwd=ROOT, capture_output=True, text=True,
                       timeout=380)
    assert r.returncode == 0, r.stderr[-3000:]
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    by = {}
    for rec in records:
        by.setdefault(rec["bench"], []).append(rec)
    assert by["parse_ceiling"][0]["spans_per_s"] > 0
    for scenario in ("passthrough", "tail_sampling", "full", "full_slo", "full_trace_tests", "full_trace_tests_idle",
                     "full_trace_tests_mix"):
        rec = by[scenario][0]
        assert rec["spans_per_cpu_s"] > 0 and 0 < rec["of_parse_ceiling"] < 1
        assert rec["spans"] == 40 * 500
    assert by["tail_sampling"][0]["exported_spans"] < by["passthrough"][0]["exported_spans"]  # sampling drops
    assert by["full_trace_tests"][0]["tested_traces"] >= 40 * 50  # every trace of the load is tested
    assert by["full_trace_tests_idle"][0]["tested_traces"] == 0
    # checkout's traces, a fifth of the load (40 requests and the 4 of the warm-up, 10 checkout traces each)
    assert by["full_trace_tests_mix"][0]["tested_traces"] == 44 * 10
    assert by["memory"][0]["bytes_per_buffered_span"] > 0 and by["memory"][0]["buffered_spans"] == 40 * 500
    assert by["latency"][0]["p50_ms"] > 0 and by["latency"][0]["p99_ms"] >= by["latency"][0]["p50_ms"]
    errors = {rec["scenario"]: rec for rec in by["accuracy"] if rec["kind"] == "error"}
    assert {"single", "cascade", "independent"} <= set(errors)
    for rec in errors.values():
        assert rec["failed_traces"] > 0 and 0 <= rec["top1"] <= 1
    slow = {rec["scenario"]: rec for rec in by["accuracy"] if rec["kind"] == "latency"}
    assert {"slow-service", "slow-database"} <= set(slow)
    for rec in slow.values():
        assert rec["slow_traces"] > 0 and 0 <= rec["top1"] <= 1


@pytest.mark.parametrize("scenario", ["passthrough", "full"])
def test_instructions_phases_run(scenario: str) -> None:
    r = subprocess.run([sys.executable, "-m", "bench.instructions", "--no-valgrind", "--scenario", scenario,
                        "--requests", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    (rec,) = [json.loads(line) for line in r.stdout.splitlines()]
    # Every span reaches the export phase when nothing samples; the full pipeline keeps a part.
    assert 0 < rec["kept_spans"] <= 1500 and (rec["kept_spans"] == 1500) is (scenario == "passthrough")


@pytest.mark.timeout(200)
def test_cpu_time_per_phase_with_the_service_graph() -> None:
    r = subprocess.run([sys.executable, "-m", "bench.instructions", "--cpu-time", "1", "--scenario",
                        "full_servicegraph", "--requests", "2"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    ns = {rec["phase"]: rec["cpu_ns_per_span"] for rec in map(json.loads, r.stdout.splitlines())}
    assert list(ns) == ["decode", "split", "span_stages", "span_expiry", "intake", "decide", "export", "total"]
    assert ns["span_stages"] > 0 and ns["span_expiry"] > 0  # the processor ran, and its edges expired
    assert ns["total"] == pytest.approx(sum(v for k, v in ns.items() if k != "total"), abs=8)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
@pytest.mark.timeout(300)
def test_instructions_counted_per_phase() -> None:
    r = subprocess.run([sys.executable, "-m", "bench.instructions", "--scenario", "tail_sampling", "--requests", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr[-3000:]
    per_span = {rec["phase"]: rec["per_span"] for rec in map(json.loads, r.stdout.splitlines())}
    assert list(per_span) == ["decode", "split", "intake", "decide", "export", "total"]
    assert all(v > 0 for v in per_span.values())
    assert per_span["total"] == pytest.approx(sum(v for k, v in per_span.items() if k != "total"), abs=3)
