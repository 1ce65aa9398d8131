"""``python -m bench.loadgen`` as a subprocess against real servers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.bench.loadgen.servers import Received, grpc_server, http_server
from tests.conftest import ROOT


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_sends_count_traces_with_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    received = Received()
    async with grpc_server(received) as port:
        code, out, err = await run_cli("--count", "20", "--endpoint", f"127.0.0.1:{port}", "--seed", "5",
                                       "--fault", "error:payment:1", "--truth", str(truth))
    assert code == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["traces"] == 20 and stats["failed_requests"] == 0
    assert "traces 20" in err  # the progress line, plain when not a terminal
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    assert len(lines) == 20
    assert {bytes.fromhex(t["trace_id"]) for t in lines} == received.trace_ids
    failing = [t for t in lines if t["error"]]
    assert failing and all(t["primary"] == "payment" and t["scenario"] == "error:payment:1" for t in failing)
    assert sum(t["spans"] for t in lines) == received.spans == stats["spans"]


async def test_cli_http_json() -> None:
    received = Received()
    async with http_server(received) as port:
        code, out, err = await run_cli("--count", "20", "--protocol", "http/json",
                                       "--endpoint", f"http://127.0.0.1:{port}", "--quiet")
    assert code == 0, err
    assert json.loads(out)["traces"] == 20 and len(received.trace_ids) == 20
    assert err == ""


async def test_cli_reports_bad_faults_and_topology(tmp_path: Path) -> None:
    code, _, err = await run_cli("--count", "1", "--fault", "error:paymnt:0.1")
    assert code == 2 and "--fault error:paymnt:0.1: service: unknown service 'paymnt'" in err
    bad = tmp_path / "t.yaml"
    bad.write_text("services: {a: {operations: {x: {kind: server, calls: [{service: b, operation: y}]}}}}\n"
                   "entrypoints: [{service: a, operation: x}]\n")
    code, _, err = await run_cli("--count", "1", "--topology", str(bad))
    assert code == 2 and f"{bad}: services.a.operations.x.calls[0].service: unknown service" in err


async def test_cli_dry_run_reports_generator_speed() -> None:
    code, out, err = await run_cli("--dry-run", "--count", "500", "--seed", "1")
    assert code == 0, err
    report = json.loads(out)
    assert report["traces"] == 500 and report["spans_per_cpu_s"] > 0


async def test_tracetriage_loadgen_is_the_same_command() -> None:
    """``tracetriage loadgen`` (the entry point the runtime's CLI loads) takes the same options."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "collector", "loadgen", "--dry-run", "--count", "50", "--seed", "1", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["traces"] == 50
