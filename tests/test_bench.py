"""The benchmark suite runs (short mode) and emits every figure, one JSON object per line."""

from __future__ import annotations

import json
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
    for scenario in ("passthrough", "tail_sampling", "full"):
        rec = by[scenario][0]
        assert rec["spans_per_cpu_s"] > 0 and 0 < rec["of_parse_ceiling"] < 1
        assert rec["spans"] == 40 * 500
    assert by["tail_sampling"][0]["exported_spans"] < by["passthrough"][0]["exported_spans"]  # sampling drops
    assert by["memory"][0]["bytes_per_buffered_span"] > 0 and by["memory"][0]["buffered_spans"] == 40 * 500
    assert by["latency"][0]["p50_ms"] > 0 and by["latency"][0]["p99_ms"] >= by["latency"][0]["p50_ms"]
    scenarios = {rec["scenario"]: rec for rec in by["accuracy"]}
    assert {"single", "cascade", "independent"} <= set(scenarios)
    for rec in scenarios.values():
        assert rec["failed_traces"] > 0 and 0 <= rec["top1"] <= 1
