"""A running collector whose trace_tests processor loads a directory of definitions (debug on, so that
``tracetriage test run --collector`` can read its results), for the ``--collector`` tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import free_port


def trace_tests_collector(directory: Path, definitions: Path, collector_factory: Any) -> tuple[Any, int, int]:
    """Start it (writing its config in ``directory``); returns (the collector, its OTLP gRPC port, its
    telemetry port)."""
    grpc_port, metrics_port = free_port(), free_port()
    cfg = directory / "collector.yaml"
    cfg.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
processors:
  trace_tests: {{definitions: "{definitions}", decision_wait: 1s}}
exporters:
  file: {{path: "{directory / 'out.jsonl'}"}}
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{metrics_port}"}}
    debug: true
  pipelines:
    traces: {{receivers: [otlp], processors: [trace_tests], exporters: [file]}}
""")
    col = collector_factory([cfg], metrics_port)
    col.wait_ready()
    return col, grpc_port, metrics_port
