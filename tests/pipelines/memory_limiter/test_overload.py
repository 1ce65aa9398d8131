"""A real collector (``limit_mib: 300``, ``spike_limit_mib: 60``, tail_sampling, file exporter) overloaded by
a real OTLP/gRPC client: it warns at start that the idle process nearly fills the limit, refuses during the
burst, exports every span it accepted, and accepts again within a few check intervals once its buffer has
drained (before, it stayed above the soft limit and refused every request for good)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bench.overload import first_accepted, offer
from tests.conftest import ROOT, CollectorProcess, free_port, wait_for

CHECK_INTERVAL_S = 0.1


def write_config(tmp_path: Path, grpc_port: int, metrics_port: int) -> Path:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 16}}
processors:
  memory_limiter: {{check_interval: {CHECK_INTERVAL_S * 1000:g}ms, limit_mib: 300, spike_limit_mib: 60}}
  tail_sampling:
    decision_wait: 2s
    num_traces: 1000000
    policies: [{{name: all, type: always_sample}}]
exporters:
  file: {{path: "{tmp_path / 'out.bin'}", format: proto}}
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, tail_sampling]
      exporters: [file]
""")
    return cfg


@pytest.mark.timeout(90)
def test_accepts_again_after_an_overload_drains(tmp_path: Path, collector_factory: type[CollectorProcess]) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    col = collector_factory([write_config(tmp_path, grpc_port, metrics_port)], metrics_port)
    col.wait_ready()
    endpoint = f"127.0.0.1:{grpc_port}"
    # The idle process leaves data less than a spike of room below the 240 MiB soft limit: said at start.
    assert "the idle process uses" in col.stderr and "Size limit_mib at least" in col.stderr
    mib = 1 << 20
    assert col.metric("tracetriage_memory_limiter_baseline_bytes") > 100 * mib
    assert col.metric("tracetriage_memory_limiter_limit_bytes") >= 300 * mib
    assert col.metric("tracetriage_memory_limiter_refusing") == 0

    # Overload: far more than the collector takes, each request sent once, for 6 s.
    burst = asyncio.run(offer(endpoint, 6.0, rate=600.0, concurrency=16))
    assert burst.failed == 0, burst.codes
    assert burst.accepted > 0
    assert burst.refused > 0
    # (counted once each refused call has finished on the server: on a loaded machine after the client saw it)
    try:
        wait_for(lambda: col.metric("otelcol_processor_refused_spans_total", processor="memory_limiter")
                 == burst.refused, timeout=15)
    except AssertionError:
        raise AssertionError(
            f"client saw {burst.refused} refused ({burst.codes}); memory_limiter counted "
            f"{col.metric('otelcol_processor_refused_spans_total', processor='memory_limiter')}, the receiver "
            f"{col.metric('otelcol_receiver_refused_spans_total')}, all processors "
            f"{col.metric('otelcol_processor_refused_spans_total')}") from None
    assert col.metric("tracetriage_memory_limiter_trims_total") >= 1

    # Once the buffer has drained, intake resumes within a few check intervals, and every span accepted
    # was exported.
    wait_for(lambda: col.metric("tracetriage_memory_limiter_held_items") == 0, timeout=30)
    assert asyncio.run(first_accepted(endpoint, within=5 * CHECK_INTERVAL_S, every=0.02)) is not None
    wait_for(lambda: col.metric("otelcol_exporter_sent_spans_total") == burst.accepted + 500, timeout=30)
    after = asyncio.run(offer(endpoint, 1.0, rate=None, concurrency=2))
    assert after.accepted > 0
    wait_for(lambda: col.metric("tracetriage_memory_limiter_held_items") == 0, timeout=30)
    wait_for(lambda: col.metric("tracetriage_memory_limiter_refusing") == 0, timeout=5 * CHECK_INTERVAL_S)
    assert col.metric("tracetriage_memory_limiter_floor_bytes") > 0
    assert col.terminate() == 0


def test_validate_warns_about_a_limit_an_idle_process_nearly_fills(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "collector", "validate", "--config",
                        str(write_config(tmp_path, 4317, 8888))],
                       capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "configuration is valid" in r.stdout
    assert "processors.memory_limiter.limit_mib: 300 MiB leaves data less than the spike limit" in r.stderr
    assert "Sizing" in r.stderr
