"""Paths and helpers shared by the deployment tests."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("gateway", "sidecar", "sampling-tier")
# Kubernetes version whose schemas kubernetes-validate checks against (it ships 1.25 to 1.37).
K8S_VERSION = "1.31"


def venv_tool(name: str) -> str | None:
    """A console script of the test venv (next to the running interpreter), else one on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)
