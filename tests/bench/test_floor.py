"""``bench.floor`` measures a bare gRPC server and a bare Kafka producer on a shape's bytes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_reports_spans_per_cpu_second_of_each_transport() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.floor", "--shape", "baseline", "--requests", "4",
                          "--rounds", "1"], capture_output=True, text=True, timeout=180, check=True,
                         cwd=ROOT).stdout.splitlines()
    rows = [json.loads(line) for line in out if line.startswith("{")]
    measured = [r for r in rows if r["bench"] == "floor"]
    transports = ["grpc", "kafka", "kafka_aiokafka_crc"]
    assert sorted(r["transport"] for r in measured) == transports
    assert all(r["spans"] == 2000 and r["cpu_s"] >= 0 for r in measured)
    assert sorted(r["transport"] for r in rows if r["bench"] == "floor_median") == transports
