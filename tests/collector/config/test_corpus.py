"""The corpus in tests/data/configs: configs in the style of the OpenTelemetry demo, the Helm chart's
rendered configs, the collector's Kubernetes and local examples, Tempo's examples and a vendor workshop,
written for these tests with the env forms, component names and layouts users have. Every one passes
``tracetriage validate`` unchanged, through the CLI, with the environment its deployment gives it.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from collector.component import ComponentID
from collector.config.service import load_config
from collector.registry import Registry
from tests.collector.config import CORPUS, cli
from tests.conftest import CollectorProcess, free_port, wait_for

KAFKA = {"KAFKA_BROKERS": "kafka-1.example:9093,kafka-2.example:9093", "KAFKA_USERNAME": "otel",
         "KAFKA_PASSWORD": "secret"}
# The environment each config's deployment gives it, and the warnings validate prints for what is unset or
# not honoured (each a fragment of one line).
CORPUS_ENV: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "otel-demo.yaml": ({"OTEL_COLLECTOR_HOST": "otel-collector", "OTEL_COLLECTOR_PORT_GRPC": "4317",
                        "OTEL_COLLECTOR_PORT_HTTP": "4318"},
                       ("service.telemetry.metrics.readers[0].periodic: pushing the collector's own metrics is "
                        "not implemented",)),
    "helm-deployment.yaml": ({"MY_POD_IP": "10.1.2.3"}, ()),
    "helm-daemonset-agent.yaml": ({"MY_POD_IP": "10.1.2.3", "K8S_NODE_NAME": "node-a"}, ()),
    # upstream's agent example sizes the limiter for a smaller process than ours: validate says so
    "k8s-agent.yaml": ({}, ("processors.memory_limiter.limit_mib: 400 MiB leaves data less than the spike limit",)),
    "k8s-gateway.yaml": ({"BACKEND_ENDPOINT": "tempo-distributor.tracing:4317"}, ()),
    "tempo-forwarder.yaml": ({}, ()),
    "upstream-local.yaml": ({}, ()),
    "workshop-kafka-agent.yaml": ({**KAFKA, "HOSTNAME": "node-a"},
                                  ("service.telemetry.logs.processors: exporting the collector's own logs is not "
                                   "implemented",)),
    "workshop-kafka-sampler.yaml": ({**KAFKA, "VENDOR_TEAM": "checkout"}, ()),
}
OVERLAYS = {"otel-demo-extras.yaml": "otel-demo.yaml"}  # merged over the named config by a second --config


def test_every_corpus_file_is_covered() -> None:
    assert {p.name for p in CORPUS.glob("*.yaml")} == set(CORPUS_ENV) | set(OVERLAYS)


@pytest.mark.parametrize("name", sorted(CORPUS_ENV))
def test_corpus_config_validates_unchanged(name: str) -> None:
    env, warnings = CORPUS_ENV[name]
    r = cli("validate", "--config", str(CORPUS / name), env=env)
    assert r.returncode == 0, r.stderr
    assert f"configuration is valid: {CORPUS / name}" in r.stdout
    printed = [line for line in r.stderr.splitlines() if line.startswith("tracetriage: warning:")]
    assert len(printed) == len(warnings), r.stderr
    for fragment in warnings:
        assert any(fragment in line for line in printed), r.stderr


def test_demo_with_its_extras_file() -> None:
    env, _ = CORPUS_ENV["otel-demo.yaml"]
    base, extras = str(CORPUS / "otel-demo.yaml"), str(CORPUS / "otel-demo-extras.yaml")
    r = cli("validate", "--config", base, "--config", extras, env={**env, "VENDOR_API_KEY": "k"})
    assert r.returncode == 0, r.stderr
    cfg = load_config([base, extras], Registry.default(), {**env, "VENDOR_API_KEY": "k"})
    pipe = cfg.pipelines[ComponentID("traces")]
    assert [str(e) for e in pipe.exporters] == ["otlp", "debug", "otlp_http/vendor"]
    vendor = cfg.exporters[ComponentID("otlp_http", "vendor")]
    assert vendor.factory.type == "otlphttp" and vendor.config.headers == {"x-api-key": "k"}
    cors = cfg.receivers[ComponentID("otlp")].config.protocols.http.cors
    assert cors.allowed_origins == ("http://*", "https://*")


def test_without_their_environment_the_unset_variables_are_named() -> None:
    r = cli("validate", "--config", str(CORPUS / "helm-deployment.yaml"), env={"MY_POD_IP": ""})
    assert r.returncode == 0, r.stderr  # an empty host listens on every interface
    r = cli("validate", "--config", str(CORPUS / "k8s-gateway.yaml"))
    assert "warning: " in r.stderr and "environment variable BACKEND_ENDPOINT is not set" in r.stderr
    assert r.returncode == 2 and "exporters.otlp_grpc.endpoint" in r.stderr  # and then the error it causes


def test_the_corpus_uses_the_forms_users_write() -> None:
    text = "\n".join(p.read_text() for p in sorted(CORPUS.glob("*.yaml")))
    forms = {
        "${NAME} without a scheme": r"\$\{[A-Z_]+\}",
        "${env:NAME}": r"\$\{env:[A-Z_]+\}",
        "${env:NAME:-default}": r"\$\{env:[A-Z_]+:-[^}]+\}",
        "$$ escape": r"\$\$\{",
        "otlp_grpc": r"^\s+otlp_grpc(/\w+)?:",
        "otlp_http": r"^\s+otlp_http(/\w+)?:",
        "http.cors": r"^\s+cors:",
        "file rotation": r"^\s+rotation:",
        "kafka top-level tls": r"^  kafka:\n(?:    [^\n]*\n)*?    tls:",
        "metrics readers": r"^\s+readers:",
        "telemetry resource": r"^\s+resource:",
        "logs processors": r"^( +)logs:\n(?:\1 [^\n]*\n)*?\1 +processors:",
        "empty values list": r"values: \[\]",
    }
    missing = [name for name, rx in forms.items() if not re.search(rx, text, re.MULTILINE)]
    assert not missing, f"the corpus no longer shows: {missing}"


def test_a_corpus_config_runs_with_set_overrides(tmp_path: Path) -> None:
    """helm-deployment.yaml started for real, its ports moved with --set: every listener says where it
    listens, what is not honoured is logged once, and /metrics is served where the pull reader says,
    without _created series."""
    grpc, http, health, metrics = (free_port() for _ in range(4))
    sets = [f"receivers.otlp.protocols.grpc.endpoint=127.0.0.1:{grpc}",
            f"receivers.otlp.protocols.http.endpoint=127.0.0.1:{http}",
            f"extensions.health_check.endpoint=127.0.0.1:{health}",
            "service.telemetry.metrics.readers="
            f"[{{pull: {{exporter: {{prometheus: {{host: 127.0.0.1, port: {metrics}}}}}}}}}]",
            "service.telemetry.resource={service.namespace: shop}",
            "service.telemetry.logs.processors=[{batch: {exporter: {otlp: {endpoint: 'logs:4317'}}}}]"]
    args = [a for s in sets for a in ("--set", s)]
    col = CollectorProcess([CORPUS / "helm-deployment.yaml"], tmp_path, metrics, {"MY_POD_IP": "10.9.9.9"},
                           extra_args=args)
    try:
        col.wait_ready()
        log = col.stderr
        assert f"Starting GRPC server on 127.0.0.1:{grpc} (endpoint 127.0.0.1:{grpc})" in log
        assert f"Starting HTTP server on 127.0.0.1:{http}" in log
        assert f"Starting health_check extension health_check on 127.0.0.1:{health}" in log
        assert f"Serving metrics on 127.0.0.1:{metrics}/metrics" in log
        not_honoured = "service.telemetry.logs.processors: exporting the collector's own logs is not implemented"
        assert log.count(not_honoured) == 1, log
        text = col.metrics()
        assert "otelcol_receiver_accepted_spans_total" in text or "otelcol_exporter_queue_capacity" in text
        assert "_created" not in text
        assert re.search(r'^target_info\{.*service_name="tracetriage".*service_namespace="shop".*\} 1\.0$', text,
                         re.MULTILINE), text
        wait_for(lambda: _healthy(health))
        assert col.terminate() == 0
    finally:
        col.stop()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
