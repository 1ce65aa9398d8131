"""Config loading and validation: env substitution, merge, every error with file and key path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from collector.component import ComponentID, Factory, Kind
from collector.config import ConfigError, Duration, decode, field
from collector.config.loader import load, substitute_env
from collector.config.service import build_config, load_config
from collector.registry import Registry


@dataclass(frozen=True)
class LatencyCfg:
    threshold_ms: int = field(0, gt=0)


@dataclass(frozen=True)
class PolicyCfg:
    name: str = field()
    type: Literal["latency", "always_sample"] = field()
    latency: LatencyCfg | None = None


@dataclass(frozen=True)
class SamplerCfg:
    decision_wait: Duration = Duration(10.0)
    num_traces: int = field(50000, gt=0)
    policies: tuple[PolicyCfg, ...] = ()


@dataclass(frozen=True)
class EmptyCfg:
    endpoint: str = "localhost:1"


def _factory(type_: str, kind: Kind, cfg: type = EmptyCfg) -> Factory:
    return Factory(type_, kind, cfg, lambda *a: object())


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add(_factory("otlp", Kind.RECEIVER))
    reg.add(_factory("otlp", Kind.EXPORTER))
    reg.add(_factory("debug", Kind.EXPORTER))
    reg.add(_factory("sampler", Kind.PROCESSOR, SamplerCfg))
    reg.add(_factory("health_check", Kind.EXTENSION))
    return reg


GOOD = """
receivers:
  otlp: {endpoint: "${env:RECV:-0.0.0.0:4317}"}
processors:
  sampler:
    decision_wait: 5s
    policies:
      - {name: slow, type: latency, latency: {threshold_ms: 500}}
exporters:
  debug:
  otlp/backend: {endpoint: "tempo:4317"}
extensions:
  health_check:
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [sampler]
      exporters: [debug, otlp/backend]
    traces/raw:
      receivers: [otlp]
      exporters: [otlp/backend]
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_good_config_loads(tmp_path: Path, registry: Registry) -> None:
    cfg = load_config([write(tmp_path, "c.yaml", GOOD)], registry, env={})
    assert set(cfg.pipelines) == {ComponentID("traces"), ComponentID("traces", "raw")}
    sampler = cfg.processors[ComponentID("sampler")].config
    assert sampler.decision_wait == 5.0
    assert sampler.policies[0].latency.threshold_ms == 500
    assert cfg.receivers[ComponentID("otlp")].config.endpoint == "0.0.0.0:4317"
    assert cfg.service.shutdown_timeout == 30.0
    assert cfg.service.telemetry.metrics.endpoints == ("localhost:8888",)


def test_env_substitution_typed_and_defaults() -> None:
    issues: list = []
    warnings: list = []
    env = {"PORT": "4317", "HOST": "h"}
    out = substitute_env(
        {"a": "${env:PORT}", "b": "${env:HOST}:${env:PORT}", "c": "${env:NOPE:-x}", "d": "$${env:PORT}",
         "e": ["${env:MISSING}"]}, "", issues, env, warnings)
    assert out == {"a": 4317, "b": "h:4317", "c": "x", "d": "${env:PORT}", "e": [""]}
    assert not issues
    assert len(warnings) == 1 and "MISSING" in warnings[0].message and warnings[0].path == "e[0]"


def test_later_files_merge_over_earlier(tmp_path: Path, registry: Registry) -> None:
    base = write(tmp_path, "base.yaml", GOOD)
    over = write(tmp_path, "over.yaml", "processors:\n  sampler:\n    num_traces: 7\n")
    raw = load([base, over], env={}).raw
    assert raw["processors"]["sampler"]["num_traces"] == 7
    assert raw["processors"]["sampler"]["decision_wait"] == "5s"  # maps merge key by key
    cfg = build_config(raw, registry)
    assert cfg.processors[ComponentID("sampler")].config.num_traces == 7


def test_every_error_reported_with_file_and_path(tmp_path: Path, registry: Registry) -> None:
    base = write(tmp_path, "base.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", """
receivers:
  otlp: {endpoint: "x", bogus: 1}
  kafka: {}
processors:
  sampler:
    num_traces: -1
    decision_wait: 10
    policies:
      - {name: a, type: always_sample}
      - {name: b, type: latency, latency: {threshold_ms: 0}}
      - {name: c, type: nope}
exporters:
  debug: []
service:
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: [sampler]
      exporters: [debug, otlp/missing]
    metrics:
      receivers: [otlp]
      exporters: [debug]
telemetry: {}
""")
    with pytest.raises(ConfigError) as ei:
        load_config([base, bad], registry, env={})
    text = str(ei.value)
    expected = [
        "receivers.otlp.bogus: unknown key",
        "receivers.kafka: unknown receiver type 'kafka'",
        "processors.sampler.num_traces: must be > 0, got -1",
        "processors.sampler.decision_wait: duration 10 needs a unit",
        "processors.sampler.policies[1].latency.threshold_ms: must be > 0, got 0",
        "processors.sampler.policies[2].type: must be one of",
        "exporters.debug: must be a mapping",
        "service.pipelines.traces.receivers[1]: references receiver 'zipkin', which is not defined",
        "service.pipelines.traces.exporters[1]: references exporter 'otlp/missing'",
        "service.pipelines.metrics: tracetriage processes traces only",
        "telemetry: unknown top-level key",
    ]
    for e in expected:
        assert e in text, f"missing {e!r} in:\n{text}"
    assert f"{bad}: processors.sampler.num_traces" in text
    assert len(ei.value.issues) == len(expected)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path, registry: Registry) -> None:
    p = write(tmp_path, "broken.yaml", "receivers:\n  otlp: [\n")
    with pytest.raises(ConfigError) as ei:
        load_config([p], registry, env={})
    assert "broken.yaml: invalid YAML at line" in str(ei.value)


def test_unreadable_file(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config([str(tmp_path / "absent.yaml")], registry, env={})


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10), ("500ms", 0.5), ("1m30s", 90), ("2h", 7200),
                                                ("1.5s", 1.5), (0, 0)])
def test_duration(text: object, seconds: float) -> None:
    assert Duration.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "s", "10x", "1s2", True, "-", ""])
def test_bad_duration(text: object) -> None:
    with pytest.raises(ValueError):
        Duration.parse(text)


def test_decode_reports_type_errors() -> None:
    with pytest.raises(ConfigError) as ei:
        decode(SamplerCfg, {"num_traces": "many", "policies": {"x": 1}})
    text = str(ei.value)
    assert "num_traces: must be an integer" in text
    assert "policies: must be a list" in text


def test_component_id_parse() -> None:
    assert ComponentID.parse("otlp/2") == ComponentID("otlp", "2")
    assert str(ComponentID.parse("otlp")) == "otlp"
    for bad in ("", "otlp/", "9x", "a b"):
        with pytest.raises(ValueError):
            ComponentID.parse(bad)


def test_sending_queue_storage_must_name_an_enabled_file_storage(tmp_path: Path) -> None:
    reg = Registry.default()
    base = """
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}}
exporters:
  otlp: {endpoint: "x:1", sending_queue: {storage: STORAGE}}
extensions:
  file_storage: {directory: /tmp}
  health_check: {}
service:
  extensions: [EXTS]
  pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}
"""
    cases = {
        ("file_storage/missing", "file_storage"): "which is not defined in extensions",
        ("file_storage", "health_check"): "must be listed in service.extensions",
        ("health_check", "health_check"): "is not a storage extension",
    }
    for (storage, exts), message in cases.items():
        p = write(tmp_path, "c.yaml", base.replace("STORAGE", storage).replace("EXTS", exts))
        with pytest.raises(ConfigError) as ei:
            load_config([p], reg, env={})
        assert "exporters.otlp.sending_queue.storage: " in str(ei.value)
        assert message in str(ei.value), str(ei.value)
    ok = write(tmp_path, "ok.yaml", base.replace("STORAGE", "file_storage").replace("EXTS", "file_storage"))
    load_config([ok], reg, env={})
