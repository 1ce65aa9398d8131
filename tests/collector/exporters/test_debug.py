"""The debug exporter at each verbosity, and its sampling."""

from __future__ import annotations

import logging

import pytest

from collector.component import Host
from collector.config import ConfigError, decode
from collector.consumer import Capabilities
from collector.exporters import debug
from tests.collector.exporters import make_batch, make_settings


async def run(config: dict[str, object], caplog: pytest.LogCaptureFixture, batches: int = 1) -> list[str]:
    settings = make_settings("debug")
    exporter = debug.factory.create(settings, decode(debug.DebugConfig, config))
    assert exporter.capabilities() == Capabilities()
    await exporter.start(Host())
    with caplog.at_level(logging.INFO, logger=settings.logger.name):
        for i in range(batches):
            await exporter.consume_traces(make_batch(3, seed=i + 1))
    await exporter.shutdown()
    await exporter.shutdown()
    return [r.getMessage() for r in caplog.records if r.name == settings.logger.name]


async def test_basic(caplog: pytest.LogCaptureFixture) -> None:
    assert await run({}, caplog) == ["Traces resource spans: 1, spans: 3"]


async def test_normal_one_line_per_span(caplog: pytest.LogCaptureFixture) -> None:
    lines = await run({"verbosity": "normal"}, caplog)
    assert lines[0] == "Traces resource spans: 1, spans: 3"
    assert len(lines) == 4
    trace = "01" * 16
    assert lines[1] == f"{trace} {(1001).to_bytes(8, 'big').hex()} op-0 status=ERROR (boom)"
    assert lines[2] == f"{trace} {(1002).to_bytes(8, 'big').hex()} op-1 status=UNSET"


async def test_detailed_dump(caplog: pytest.LogCaptureFixture) -> None:
    lines = await run({"verbosity": "detailed"}, caplog)
    assert len(lines) == 2
    dump = lines[1]
    for expected in (
        "ResourceSpans #0",
        "     -> service.name: Str(checkout)",
        "InstrumentationScope test-scope 1.0",
        "Span #2",
        f"    Trace ID       : {'01' * 16}",
        "    Name           : op-0",
        "    Kind           : Server",
        "    Status code    : Error",
        "    Status message : boom",
        "     -> http.route: Str(/pay)",
        "     -> retries: Int(2)",
        "SpanEvent #0",
        "     -> Name: exception",
        "          -> exception.type: Str(ValueError)",
        "SpanLink #0",
        f"     -> Trace ID: {'0a' * 16}",
        "    Start time     : 2023-11-14 22:13:20.000000000 +0000 UTC",
    ):
        assert expected in dump, expected


async def test_sampling(caplog: pytest.LogCaptureFixture) -> None:
    lines = await run({"sampling_initial": 2, "sampling_thereafter": 3}, caplog, batches=8)
    # batches 1, 2 pass, then every 3rd after the initial ones: 5, 8 (all within one second)
    assert len(lines) in (4, 5)


def test_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        decode(debug.DebugConfig, {"verbosity": "loud", "sampling_initial": 0, "extra": 1}, "exporters.debug")
    text = str(info.value)
    assert "exporters.debug.verbosity: must be one of" in text
    assert "exporters.debug.sampling_initial: must be >= 1" in text
    assert "exporters.debug.extra: unknown key" in text
