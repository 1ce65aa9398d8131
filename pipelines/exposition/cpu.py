"""The CPU time of a span-level stage, for the share of the process it costs."""

from __future__ import annotations

from prometheus_client import Counter

from collector.telemetry import Telemetry


def span_stage_cpu_counter(telemetry: Telemetry) -> Counter:
    """``tracetriage_span_stage_cpu_seconds_total{processor}``: the thread CPU time of a span-level stage's work
    on each batch (before it hands the batch on) and of its own background work (expiry, sweeps). Read beside
    ``otelcol_process_cpu_seconds`` it says what share of the process the stage costs, as
    ``tracetriage_trace_stage_cpu_seconds_total`` does for the trace stages."""
    return telemetry.counter("tracetriage_span_stage_cpu_seconds",
                             "CPU time spent by each span-level stage that reports it: its work on each batch, "
                             "and its own background work.", ("processor",))
