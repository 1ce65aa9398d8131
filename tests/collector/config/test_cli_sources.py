"""The command line as otelcol's: config URIs (file:, env:, yaml:), --set, --feature-gates, the unknown
command, and every error of a config reported in one run. Through the CLI, in a child process."""

from __future__ import annotations

from pathlib import Path

from collector.config.features import FeatureGates
from collector.config.service import load_config
from collector.registry import Registry
from tests.collector.config import cli

BASE = """receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:4317"}
processors:
  batch: {timeout: 1s}
exporters:
  debug: {}
extensions:
  health_check: {}
service:
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
"""


def write(tmp_path: Path, text: str, name: str = "base.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_file_env_and_yaml_uris_merge_in_order(tmp_path: Path) -> None:
    base = write(tmp_path, BASE)
    over = "processors: {batch: {timeout: 2s}}\nexporters: {debug: {verbosity: detailed}}\n"
    r = cli("validate", "--config", f"file:{base}", "--config", "env:TT_OVERRIDES",
            "--config", "yaml:processors::batch::send_batch_size: 64", env={"TT_OVERRIDES": over})
    assert r.returncode == 0, r.stderr
    assert f"configuration is valid: {base}, env:TT_OVERRIDES, yaml:processors::batch::send_batch_size: 64" in r.stdout
    # the sources are named in errors
    r = cli("validate", "--config", base, "--config", "env:TT_OVERRIDES",
            "--config", "yaml:processors::batch::send_batch_size: -1",
            env={"TT_OVERRIDES": "exporters: {debug: {x: 1}}"})
    assert r.returncode == 2
    assert "env:TT_OVERRIDES: exporters.debug.x: unknown key" in r.stderr
    assert "yaml:processors::batch::send_batch_size: -1: processors.batch.send_batch_size: must be >= 0" in r.stderr


def test_an_env_uri_that_is_unset_adds_nothing_with_a_warning(tmp_path: Path) -> None:
    r = cli("validate", "--config", write(tmp_path, BASE), "--config", "env:TT_NOT_SET")
    assert r.returncode == 0, r.stderr
    assert "warning: env:TT_NOT_SET: environment variable TT_NOT_SET is not set; it adds nothing" in r.stderr


def test_unsupported_uri_schemes_and_bad_sources_are_refused(tmp_path: Path) -> None:
    r = cli("validate", "--config", "https://config.example/otel.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "config URI scheme 'https' is not supported (use a path, file:PATH, env:NAME or yaml:...)" in r.stderr
    r = cli("validate", "--config", write(tmp_path, BASE), "--config", "yaml:[1, 2]")
    assert r.returncode == 2 and "yaml:[1, 2]: the top level must be a mapping" in r.stderr
    r = cli("validate", "--config", "env:TT_BAD_YAML", env={"TT_BAD_YAML": "a: [1"})
    assert r.returncode == 2 and "env:TT_BAD_YAML: invalid YAML at line 2" in r.stderr


def test_set_overrides_every_config_and_takes_yaml_values(tmp_path: Path) -> None:
    base = write(tmp_path, BASE)
    later = write(tmp_path, "processors: {batch: {timeout: 3s}}\n", "later.yaml")
    # --set comes after every --config, whatever the order on the command line
    r = cli("validate", "--set", "processors.batch.timeout=nonsense", "--config", base, "--config", later)
    assert r.returncode == 2
    assert "processors.batch.timeout: invalid duration 'nonsense'" in r.stderr
    r = cli("validate", "--config", base,
            "--set", "exporters.otlp_grpc/backup.endpoint=backup.example:4317",  # a new component
            "--set", "exporters.otlp_grpc/backup.tls={insecure: true}",  # a YAML mapping, merged
            "--set", "service.pipelines.traces.exporters=[debug, otlp_grpc/backup]",  # a list, replaced
            "--set", "service.extensions=[]")
    assert r.returncode == 0, r.stderr
    r = cli("validate", "--config", base, "--set", "service.pipelines.traces.exporters=[debug, otlp/nope]")
    assert r.returncode == 2
    assert ("yaml:service::pipelines::traces::exporters: [debug, otlp/nope]: service.pipelines.traces.exporters[1]: "
            "references exporter 'otlp/nope', which is not defined in exporters") in r.stderr


def test_set_without_an_equal_sign_is_refused(tmp_path: Path) -> None:
    r = cli("validate", "--config", write(tmp_path, BASE), "--set", "processors.batch.timeout")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--set 'processors.batch.timeout': missing equal sign (use --set key.path=value)" in r.stderr


def test_feature_gates(tmp_path: Path) -> None:
    base = write(tmp_path, BASE)
    r = cli("validate", "--config", base, "--feature-gates", "confmap.enableMergeAppendOption,telemetry.bogus")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no such feature gate 'telemetry.bogus' (tracetriage implements: confmap.enableMergeAppendOption, " \
           "processor.tailsamplingprocessor.recordpolicy, processor.tailsamplingprocessor.usetracestate, " \
           "service.AllowNoPipelines)" in r.stderr
    r = cli("validate", "--config", base, "--feature-gates=,")
    assert r.returncode == 2 and "empty feature gate identifier" in r.stderr

    # confmap.enableMergeAppendOption: service component lists are joined, not replaced
    extra = write(tmp_path, "extensions: {file_storage: {directory: /tmp}}\nexporters: {debug/two: {}}\n"
                            "service:\n  extensions: [file_storage]\n"
                            "  pipelines: {traces: {exporters: [debug/two]}}\n", "extra.yaml")
    ok = "configuration is valid"
    r = cli("validate", "--config", base, "--config", extra, "--feature-gates", "+confmap.enableMergeAppendOption")
    assert r.returncode == 0 and ok in r.stdout, r.stderr
    joined = load_config([base, extra], Registry.default(), {},
                         gates=FeatureGates.parse(["confmap.enableMergeAppendOption"]))
    assert [str(e) for e in joined.extensions] == ["health_check", "file_storage"]
    assert [str(e) for e in next(iter(joined.pipelines.values())).exporters] == ["debug", "debug/two"]
    replaced = load_config([base, extra], Registry.default(), {})
    assert [str(e) for e in replaced.extensions] == ["file_storage"]

    # service.AllowNoPipelines: extensions only
    no_pipes = write(tmp_path, "extensions: {health_check: {}}\nservice: {extensions: [health_check]}\n", "np.yaml")
    r = cli("validate", "--config", no_pipes)
    assert r.returncode == 2 and "service.pipelines: is required" in r.stderr and "service.AllowNoPipelines" in r.stderr
    r = cli("validate", "--config", no_pipes, "--feature-gates", "service.AllowNoPipelines")
    assert r.returncode == 0, r.stderr
    r = cli("validate", "--config", no_pipes, "--feature-gates", "service.AllowNoPipelines,-service.AllowNoPipelines")
    assert r.returncode == 2


def test_components_lists_gates_and_both_spellings() -> None:
    r = cli("components")
    assert r.returncode == 0
    assert "(also: otlp_grpc)" in r.stdout and "(also: otlp_http)" in r.stdout
    assert "feature gates (--feature-gates):" in r.stdout
    assert "confmap.enableMergeAppendOption" in r.stdout and "service.AllowNoPipelines" in r.stdout


def test_an_unknown_command_is_named_with_the_commands() -> None:
    r = cli("bogus")
    assert r.returncode == 2
    assert "tracetriage: unknown command 'bogus'; the commands are: run, validate, components" in r.stderr
    assert "--config" not in r.stderr
    r = cli("--config", "/nonexistent.yaml")  # an option first still means run
    assert r.returncode == 2 and "/nonexistent.yaml: cannot read config file" in r.stderr


def test_every_error_in_one_run_substitution_included(tmp_path: Path) -> None:
    bad = write(tmp_path, BASE.replace('"127.0.0.1:4317"', '"${file:/etc/addr}"').replace(
        "batch: {timeout: 1s}", "batch:\n    timeout: ${env:TT_TIMEOUT:-soon}\n    bogus: ${UNSET_ONE}"), "bad.yaml")
    r = cli("validate", "--config", bad)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert "tracetriage: invalid configuration (3 errors):" in lines
    assert (f"  {bad}: receivers.otlp.protocols.grpc.endpoint: unsupported reference ${{file:/etc/addr}}: "
            "tracetriage substitutes ${env:NAME} and ${NAME} only") in lines
    assert f"  {bad}: processors.batch.timeout: invalid duration 'soon' (use units ns, us, ms, s, m, h: e.g. 10s, " \
           "1m30s)" in lines
    assert any(line.startswith(f"  {bad}: processors.batch.bogus: unknown key") for line in lines)
    assert (f"tracetriage: warning: {bad}: processors.batch.bogus: environment variable UNSET_ONE is not set; "
            "using an empty string") in lines
