"""Deployment tests (Dockerfile, image build steps, deploy/ manifests, dashboard): pytest hooks."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow_build: builds a fresh venv with pip from the source tree (about 30-90 s, needs PyPI)"
    )
