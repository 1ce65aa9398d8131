"""The fuzz targets stay working: each runs over its seeds (real requests, configs, traces) without a broken
contract, and, with atheris installed, a short bounded atheris run of each finds nothing."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import otlpjson
from tests.collector.wire.support import random_request
from tests.conftest import ROOT
from tests.fuzz.targets import TARGETS


def seeds(name: str) -> list[bytes]:
    rnd = random.Random(5)
    if name == "wire":
        return [b"", b"\x0a", b"\x0a\x80", *(random_request(rnd, 0.2) for _ in range(8))]
    if name == "otlp_json":
        return [b"{}", b"[]", b"\xef\xbb\xbf{}", json.dumps({"resourceSpans": [{"scopeSpans": [{}]}]}).encode(),
                *(otlpjson.encode_request(ExportTraceServiceRequest.FromString(random_request(rnd, 0.0)))
                  for _ in range(3))]
    if name == "config":
        shipped = sorted((ROOT / "configs").glob("*.yaml"))
        return [b"", b"receivers: [", b"\xff\xfe\x00", *(p.read_bytes() for p in shipped)]
    return [bytes(rnd.randrange(256) for _ in range(rnd.randrange(5, 120))) for _ in range(30)]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_over_its_seeds(name: str) -> None:
    for data in seeds(name):
        TARGETS[name](data)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (pip install atheris; Linux wheels for CPython 3.11+)")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_bounded_atheris_run(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, data in enumerate(seeds(name)[:6]):
        (corpus / f"seed{i}").write_bytes(data)
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz", name, "-runs=300", "-max_len=2048", str(corpus)],
                          cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Done 300 runs" in proc.stderr
