"""Fixtures for the Kafka tests: a tansu broker per test, the collector CLI with the kafka components."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.component import Kind
from collector.registry import Registry
from tests.collector.kafka.broker import Broker
from tests.collector.kafka.util import STARTED

_PLUGINS = {
    "kafka_receiver": ("kafka", "collector.receivers.kafka:factory", Kind.RECEIVER),
    "kafka_exporter": ("kafka", "collector.exporters.kafka:factory", Kind.EXPORTER),
    "file_storage": ("file_storage", "collector.extensions.file_storage:factory", Kind.EXTENSION),
}


@pytest.fixture(scope="session")
def collector_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for collector subprocesses. Until the kafka components are in the registry's
    BUILTIN_MODULES, they are offered as entry-point plugins from a temporary directory."""
    builtin = Registry.default(plugins=False)
    site = tmp_path_factory.mktemp("plugins")
    needed = False
    for dist, (name, target, kind) in _PLUGINS.items():
        if builtin.get(kind, name) is not None:
            continue
        needed = True
        info = site / f"tt_{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tt-{dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[tracetriage.components]\n{name} = {target}\n")
    if not needed:
        return {}
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(autouse=True)
def _stop_collectors() -> Iterator[None]:
    yield
    while STARTED:
        STARTED.pop().stop()
