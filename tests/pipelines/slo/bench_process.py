"""Micro-benchmark of ``slo.process_traces`` on 10-span traces (not collected by pytest).

    .venv/bin/python -m tests.pipelines.slo.bench_process
"""

from __future__ import annotations

import os
import time

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace, make_origin, make_trace
from tests.pipelines.slo.helpers import Clock, processor, resource, slo_doc

TRACES = 3000
SPANS = 10
ORIGINS = {name: make_origin(resource(name)) for name in ("frontend", "checkout", "cart")}


def make(signal_every: int) -> Trace:
    """Spans op0..op9 over three services; every ``signal_every``-th span (and the root) is named place_order."""
    tid = os.urandom(16)
    ids = [os.urandom(8) for _ in range(SPANS)]
    groups: dict[str, list[Span]] = {}
    for i in range(SPANS):
        name = "place_order" if i % signal_every == 0 else f"op{i}"
        service = "frontend" if i % signal_every == 0 else ("checkout", "cart")[i % 2]
        s = Span(trace_id=tid, span_id=ids[i], parent_span_id=ids[(i - 1) // 2] if i else b"", name=name,
                 start_time_unix_nano=1_700_000_000_000_000_000 + i, end_time_unix_nano=1_700_000_000_020_000_000)
        for k in range(8):
            s.attributes.append(KeyValue(key=f"attr.key{k}", value=AnyValue(string_value=f"value-{k}-{i}")))
        groups.setdefault(service, []).append(s)
    trace = make_trace([(ORIGINS[n], spans) for n, spans in groups.items()])
    trace.maybe_error = False  # as the receiver's wire walk finds it: no ERROR status, no error attribute
    return trace


def measure(label: str, signal_every: int, slos: list[dict[str, object]]) -> None:
    proc = processor(slos, Clock())
    best = float("inf")
    for _ in range(7):
        traces = [make(signal_every) for _ in range(TRACES)]
        started = time.process_time()
        proc.process_traces(traces)
        best = min(best, time.process_time() - started)
    print(f"{label:64s} {best / (TRACES * SPANS) * 1e6:6.3f} µs/span")


def main() -> None:
    avail = slo_doc("a")
    latency = slo_doc("l", sli="latency", threshold="300ms")
    regex = slo_doc("r")
    total = regex["spec"]["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"]["spec"]
    total["span_name_regex"] = "^place_"
    del total["span_name"]
    measure("availability + latency, 1 signal span in 10", 10, [avail, latency])
    measure("availability + latency, 5 signal spans in 10", 2, [avail, latency])
    measure("availability by span_name_regex, 1 signal span in 10", 10, [regex])
    measure("no signal span in the trace's services", 10, [slo_doc("x", service="shipping")])


if __name__ == "__main__":
    main()
