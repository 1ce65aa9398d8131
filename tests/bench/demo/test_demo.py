"""``tracetriage demo``: the README's main command, run from a directory that is not the project's."""

from __future__ import annotations

import filecmp
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.timeout(120)
def test_demo_runs_and_pages_the_fault_owners_team(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "collector", "demo", "--duration", "20"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=100, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # The fault is an orders-db outage: the data team, which owns the database, is paged, with the path.
    assert re.search(r"^status page: http://127\.0\.0\.1:\d+/$", r.stdout, re.MULTILINE), r.stdout[:1000]
    assert "PAGE → team data" in r.stdout, r.stdout[-3000:]
    assert "path: frontend:" in r.stdout
    assert "root causes: orders-db" in r.stdout
    assert '"data":' in r.stdout.splitlines()[-1]
    # The shop's trace tests (configs/trace-tests/) run on every live trace: the orders database's fails and
    # pages its owner (the data team) once, with the failed assertion, the actual value and example traces.
    assert "trace tests failed: the orders database answers " in r.stdout
    heads = [line for line in r.stdout.splitlines() if "trace test 'the orders database answers'" in line]
    assert len(heads) == 1 and heads[0].startswith("PAGE → team data"), heads
    body = r.stdout.split(heads[0], 1)[1].splitlines()[1:5]
    assert body[0].strip().endswith("configs/trace-tests/orders-db.yaml"), body
    assert body[1].strip() == 'failed: attr:tracetest.span.status_code != "error"', body
    assert body[2].strip().startswith("actual: inventory: SELECT stock (") and body[2].strip().endswith(
        ': actual "error"'), body
    assert len(body[3].split(": ", 1)[1].split(",")) >= 1


def test_packaged_catalog_matches_configs() -> None:
    packaged = ROOT / "bench" / "demo" / "catalog"
    shipped = ROOT / "configs" / "catalog"
    names = sorted(p.name for p in shipped.glob("*.yaml"))
    assert names == sorted(p.name for p in packaged.glob("*.yaml"))
    _, mismatch, errors = filecmp.cmpfiles(shipped, packaged, names, shallow=False)
    assert not mismatch and not errors, "bench/demo/catalog must be a copy of configs/catalog"
