"""The collector configs the image and the manifests ship: they parse, and `python -m collector validate` accepts
them with the environment each container gets (literal env values, placeholder values for secretKeyRefs)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.common import DEPLOY, OVERLAYS, ROOT
from tests.deploy.kustomize import build, pod_specs

SECRET_PLACEHOLDER = "placeholder-from-secret"


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
            env[e["name"]] = "pod-or-node-name"
        else:
            raise AssertionError(f"unexpected env source {src}")
    return env


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
    assert "0.0.0.0:8888" in telemetry and "0.0.0.0:13133" in health, "reachable from outside the container"
    if "CATALOG_GLOB" in env:
        assert env["CATALOG_GLOB"] == "/etc/tracetriage/catalog/*.yaml"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    proc = validate(path, env)
    assert proc.returncode == 0, f"{overlay} {name}:\n{proc.stdout}{proc.stderr}"
