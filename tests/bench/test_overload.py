"""bench.overload: its collector configs are valid, and the limit near the idle footprint is the one that
warns. (The sender and the probe run against a real collector in
tests/pipelines/memory_limiter/test_overload.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.overload import config
from collector.config.service import load_config
from collector.registry import Registry


@pytest.mark.parametrize(("limit", "spike", "warns"), [(600, 100, False), (300, 60, True)])
def test_configs_are_valid_and_the_near_idle_one_warns(tmp_path: Path, limit: int, spike: int,
                                                      warns: bool) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(config(4317, 8888, tmp_path / "out.bin", limit, spike))
    loaded = load_config([str(path)], Registry.default())
    assert any(w.path.endswith("memory_limiter.limit_mib") for w in loaded.warnings) is warns
