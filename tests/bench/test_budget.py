"""The budget benchmark runs (short mode) through the real tail_sampling stage and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.timeout(300)
def test_budget_short_mode_reports_windows_keys_and_estimates() -> None:
    r = subprocess.run([sys.executable, "-m", "bench.budget", "--short"], cwd=ROOT, capture_output=True,
                       text=True, timeout=280)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["bench"] == "budget" and rec["minutes"] == 2.0
    assert set(rec["kept_spans_per_sec_by_minute"]) == {"0", "1"}
    assert set(rec["keys"]) == {"shop/checkout", "shop/search", "accounts/profile", "admin/audit"}
    assert rec["min_kept_per_key_interval"] >= 1  # every key with traffic kept a trace in every interval
    # the rare keys are kept whole, so their estimate is their count
    assert rec["keys"]["admin/audit"]["estimate"] == rec["keys"]["admin/audit"]["true_spans"]
    assert rec["worst_window_error"] >= 0 and rec["worst_estimate_error"] >= 0
