"""``tracetriage demo`` pages through SLO burn: real processes (the embedded broker, the collector, the
load generator), the shipped demo objectives, the alert sink printing each page. The two runs go at once
(each is mostly waiting) to keep the wall time near one run's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Long enough for the 1-minute window to pass 14.4x and the page to be sent (about 10 s in), with room
# for a loaded machine; the page must then not be repeated or duplicated for the rest of the run.
DURATION = "25"


def _start(tmp_path: Path, fault: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "collector", "demo", "--duration", DURATION, "--fault", fault],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pages(out: str) -> list[list[str]]:
    """Each printed page: its first line and its indented lines."""
    pages: list[list[str]] = []
    for line in out.splitlines():
        if line.startswith(("PAGE → ", "CHAT → ")):
            pages.append([line])
        elif pages and line.startswith("        "):
            pages[-1].append(line.strip())
    return pages


def _field(page: list[str], name: str) -> str:
    return next(line.removeprefix(name + ": ") for line in page[1:] if line.startswith(name + ": "))


@pytest.mark.timeout(150)
def test_slo_burn_pages_go_once_to_the_team_that_owns_the_root_cause(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "latency").mkdir()
    db = _start(tmp_path / "db", "db:orders-db:0.3")
    latency = _start(tmp_path / "latency", "latency:inventory:800:0.3")
    out_db, err_db = db.communicate(timeout=120)
    out_lat, err_lat = latency.communicate(timeout=120)
    assert db.returncode == 0, out_db[-3000:] + err_db[-3000:]
    assert latency.returncode == 0, out_lat[-3000:] + err_lat[-3000:]

    # The database outage burns checkout availability and pages the data team (orders-db's owners) once; the
    # shop's trace test of the orders database fails too and pages the same team once (tests/bench/demo/
    # test_demo.py looks at that page).
    pages = _pages(out_db)
    (page,) = [p for p in pages if " SLO " in p[0]]
    assert len([p for p in pages if "trace test 'the orders database answers'" in p[0]]) == 1
    assert page[0].startswith("PAGE → team data (PagerDuty key 3e7a9c1b…): SLO checkout-availability burning"), page
    assert _field(page, "objective").startswith("Checkout availability")
    rates = _field(page, "burn rate")
    assert re.match(r"[0-9.]+x over 1m, [0-9.]+x over 10s \(pages above 14.4x\)   error budget left: -?[0-9.]+%",
                    rates), rates
    assert float(rates.split("x")[0]) > 14.4
    assert _field(page, "top causes").startswith("orders-db 100% (traces ")
    assert _field(page, "path").startswith("frontend:")
    assert re.fullmatch(r"[0-9a-f]{32}", _field(page, "example trace"))
    assert out_db.splitlines()[-1] == 'pages by team: {"data": 2}'

    # Inventory 800 ms slower in 30 % of traces burns checkout latency; the critical-path walk blames
    # inventory's ReserveItems: inventory's team is paged (through chat: it has no PagerDuty key), once.
    (page,) = _pages(out_lat)
    assert page[0].startswith("CHAT → team inventory (no PagerDuty key: webhook): SLO checkout-latency burning"), page
    assert _field(page, "objective").startswith("Checkout latency")
    top = _field(page, "top causes")
    assert re.match(r"inventory (9[0-9]|100)% \(traces [0-9a-f]{32}", top), top
    assert "inventory:oteldemo.InventoryService/ReserveItems 8" in _field(page, "critical path")
    assert _field(page, "routed to").startswith("owner of inventory, the dominant cause")
    assert "p99" in _field(page, "latency (ms)")
    assert out_lat.splitlines()[-1] == 'pages by team: {"inventory": 1}'
