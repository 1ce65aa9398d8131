"""The collector configs the image and the manifests ship: they parse, and `python -m collector validate` accepts
them with the environment each container gets (literal env values, placeholder values for secretKeyRefs)."""

from __future__ import annotations

import filecmp
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.common import DEPLOY, OVERLAYS, ROOT
from tests.deploy.kustomize import build, pod_specs

SECRET_PLACEHOLDER = "placeholder-from-secret"
POD_IP = "10.1.2.3"  # what the downward API (status.podIP) gives a container here


def validate(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TT_", "KAFKA_", "PD_", "TRACES_", "CATALOG_"))}
    return subprocess.run([sys.executable, "-m", "collector", "validate", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env={**clean, **env}, timeout=60)


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment Kubernetes gives the container (Secrets: a placeholder unless optional)."""
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        src = e["valueFrom"]
        if "secretKeyRef" in src:
            if not src["secretKeyRef"].get("optional"):
                env[e["name"]] = SECRET_PLACEHOLDER
        elif "fieldRef" in src:
            env[e["name"]] = POD_IP if src["fieldRef"]["fieldPath"] == "status.podIP" else "pod-or-node-name"
        else:
            raise AssertionError(f"unexpected env source {src}")
    # $(NAME) in a value is another variable defined before it in the list, as Kubernetes expands it.
    return {k: re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), v) for k, v in env.items()}


def configs_in_overlays() -> list[tuple[str, str, str, dict[str, str]]]:
    """(overlay, workload/container, config text, env) for every tracetriage container of every overlay."""
    out = []
    for overlay in OVERLAYS:
        objs = build(DEPLOY / "overlays" / overlay)
        configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
        for w in objs:
            for pod in pod_specs(w):
                volumes = {v["name"]: v for v in pod.get("volumes", [])}
                for c in pod["containers"]:
                    if "tracetriage" not in c["image"]:
                        continue
                    path = Path(c["args"][c["args"].index("--config") + 1])
                    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == str(path.parent))
                    cm = configmaps[volumes[mount["name"]]["configMap"]["name"]]
                    out.append((overlay, f"{w['metadata']['name']}/{c['name']}", cm["data"][path.name],
                                container_env(c)))
    return out


CASES = configs_in_overlays()


def test_deploy_copies_are_in_sync() -> None:
    """kustomize reads no file outside deploy/base: its copies must match configs/ (re-copy when this fails:
    cp configs/gateway.yaml deploy/base/config/ && cp configs/catalog/*.yaml deploy/base/catalog/)."""
    assert filecmp.cmp(ROOT / "configs/gateway.yaml", DEPLOY / "base/config/gateway.yaml", shallow=False)
    ours = sorted(p.name for p in (ROOT / "configs/catalog").glob("*.yaml"))
    theirs = sorted(p.name for p in (DEPLOY / "base/catalog").glob("*.yaml"))
    assert ours == theirs
    for name in ours:
        assert filecmp.cmp(ROOT / "configs/catalog" / name, DEPLOY / "base/catalog" / name, shallow=False), name
    generated = yaml.safe_load((DEPLOY / "base/kustomization.yaml").read_text())["configMapGenerator"]
    (catalog_gen,) = [g for g in generated if g["name"] == "tracetriage-catalog"]
    assert sorted(Path(f).name for f in catalog_gen["files"]) == ours, "every catalog file is in the ConfigMap"


def test_catalog_documents_parse() -> None:
    for path in (DEPLOY / "base/catalog").glob("*.yaml"):
        with path.open() as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        assert docs, path
        for d in docs:
            assert d["apiVersion"].startswith("backstage.io/") and d["metadata"]["name"], path


def test_image_default_config_validates() -> None:
    proc = validate(ROOT / "configs/gateway.yaml", {})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cases_cover_every_topology() -> None:
    where = {(overlay, name) for overlay, name, _c, _e in CASES}
    assert ("gateway", "tracetriage-gateway/tracetriage") in where
    assert ("sidecar", "shop-frontend/tracetriage") in where
    assert ("sampling-tier", "tracetriage-sampler/tracetriage") in where
    assert ("sampling-tier", "tracetriage-agent/tracetriage") in where


@pytest.mark.parametrize(("overlay", "name", "text", "env"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_config_in_configmap_validates(overlay: str, name: str, text: str, env: dict[str, str],
                                      tmp_path: Path) -> None:
    config = yaml.safe_load(text)
    assert {"receivers", "exporters", "service"} <= set(config), f"{overlay} {name}"
    telemetry = config["service"]["telemetry"]["metrics"]["address"]
    health = config["extensions"]["health_check"]["endpoint"]
    assert "0.0.0.0:13133" in health, "the kubelet probes the pod IP"
    assert telemetry == "${env:TT_METRICS:-127.0.0.1:8888}" and env.get("TT_METRICS") == f"{POD_IP}:8888", (
        "/metrics on the pod IP for Prometheus, on loopback without the manifest's setting")
    if "CATALOG_GLOB" in env:
        assert env["CATALOG_GLOB"] == "/etc/tracetriage/catalog/*.yaml"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    proc = validate(path, env)
    assert proc.returncode == 0, f"{overlay} {name}:\n{proc.stdout}{proc.stderr}"


# -- where the shipped configs listen --------------------------------------------------------------------------

LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}
_ENV_REF = re.compile(r"\$\{env:(\w+)(?::-([^}]*))?\}")


def shipped_configs() -> list[Path]:
    """Every collector config in configs/ and deploy/ (catalogs, SLOs and silences are not configs)."""
    found = []
    for path in sorted([*(ROOT / "configs").glob("*.yaml"), *DEPLOY.rglob("config/*.yaml")]):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "service" in doc:
            found.append(path)
    return found


def as_shipped(value: str) -> str:
    """An address as it is with no environment set: each ``${env:X:-default}`` its default."""
    return _ENV_REF.sub(lambda m: m.group(2) or "", value)


def host(address: str) -> str:
    return address.rpartition(":")[0]


def line_of(text: str, value: str) -> str:
    return next(line for line in text.splitlines() if value in line)


def listener_problems(text: str) -> list[str]:
    """What breaks the rules for one config's text: /metrics on loopback unless a commented line names the pod
    IP; every listener's host written out (":4317" would be every interface without saying so)."""
    doc = yaml.safe_load(text)
    problems = []
    metrics = doc["service"].get("telemetry", {}).get("metrics", {})
    readers = [r.get("pull", {}).get("exporter", {}).get("prometheus", {}) for r in metrics.get("readers", [])]
    addresses = [*([metrics["address"]] if "address" in metrics else []),
                 *(f"{prom.get('host', 'localhost')}:{prom.get('port', 8888)}" for prom in readers)]
    for address in addresses:
        if host(as_shipped(address)) in LOOPBACK:
            continue
        if "POD_IP" in address and "#" in line_of(text, address):
            continue
        problems.append(f"/metrics on {address!r}: use 127.0.0.1, or the pod IP with a comment saying why")
    protocols = (doc.get("receivers", {}).get("otlp") or {}).get("protocols", {})
    listeners = [*(p.get("endpoint") for p in protocols.values() if isinstance(p, dict)),
                 (doc.get("extensions", {}).get("health_check") or {}).get("endpoint")]
    problems += [f"listener {endpoint!r} names no host: write 0.0.0.0, the pod IP or 127.0.0.1"
                 for endpoint in listeners if endpoint is not None and not host(as_shipped(str(endpoint)))]
    return problems


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_keeps_metrics_off_the_public_interface(path: Path) -> None:
    assert not listener_problems(path.read_text())


def test_every_shipped_config_is_checked() -> None:
    names = {str(p.relative_to(ROOT)) for p in shipped_configs()}
    assert {"configs/gateway.yaml", "configs/default.yaml", "deploy/base/config/gateway.yaml",
            "deploy/overlays/sidecar/config/sidecar.yaml", "deploy/overlays/sampling-tier/config/sampler.yaml",
            "deploy/overlays/sampling-tier/config/agent.yaml"} <= names


def test_the_listener_rules_find_what_they_should() -> None:
    base = "receivers: {otlp: {protocols: {grpc: {endpoint: GRPC}}}}\nservice:\n  telemetry:\n    metrics: METRICS\n"

    def problems(grpc: str, metrics: str) -> list[str]:
        return listener_problems(base.replace("GRPC", grpc).replace("METRICS", metrics))

    assert problems("0.0.0.0:4317", '{address: "${env:TT_METRICS:-127.0.0.1:8888}"}') == []
    assert problems("localhost:4317", "{address: '[::1]:8888'}") == []
    assert problems("0.0.0.0:4317", '{address: "${env:POD_IP}:8888"}   # the pod IP: Prometheus scrapes it') == []
    assert len(problems("0.0.0.0:4317", '{address: "${env:TT_METRICS:-0.0.0.0:8888}"}')) == 1
    assert len(problems("0.0.0.0:4317", '{address: "${env:POD_IP}:8888"}')) == 1  # the pod IP without a word
    assert len(problems("0.0.0.0:4317", "{readers: [{pull: {exporter: {prometheus: {host: 0.0.0.0}}}}]}")) == 1
    assert len(problems('"${env:TT_OTLP_GRPC:-:4317}"', "{}")) == 1


def test_manifests_give_metrics_the_pod_ip_with_a_comment() -> None:
    """Each tracetriage container sets TT_METRICS to $(POD_IP):8888, POD_IP from the downward API, on a line
    that says why; the sidecar's and the others' OTLP and health listeners stay as their configs say."""
    for overlay in OVERLAYS:
        for w in build(DEPLOY / "overlays" / overlay):
            for pod in pod_specs(w):
                for c in pod["containers"]:
                    if "tracetriage" not in c["image"]:
                        continue
                    env = {e["name"]: e for e in c.get("env", [])}
                    where = f"{overlay} {w['metadata']['name']}/{c['name']}"
                    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", where
                    assert env["TT_METRICS"]["value"] == "$(POD_IP):8888", where
                    names = [e["name"] for e in c["env"]]
                    assert names.index("POD_IP") < names.index("TT_METRICS"), f"{where}: defined before use"
    for path in DEPLOY.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if "TT_METRICS" in line and "value:" in line:
                assert "POD_IP" in line and "#" in line, f"{path}: {line.strip()}"
