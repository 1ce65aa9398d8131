"""``bench.split_walks`` runs and reports a figure per walk and shape."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_reports_ns_per_span_for_each_walk() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.split_walks", "--shape", "trace_1", "--walk", "python",
                          "--walk", "vectorized", "--ids-once"], capture_output=True, text=True, timeout=120,
                         check=True, cwd=ROOT).stdout.splitlines()
    rows = [json.loads(line) for line in out]
    assert [r["walk"] for r in rows] == ["python", "vectorized"]
    assert all(r["ids_once"] and r["ns_per_span"]["trace_1"] > 0 for r in rows)
