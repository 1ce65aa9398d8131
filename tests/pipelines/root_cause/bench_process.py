"""Micro-benchmark of ``root_cause.process_traces`` on 10-span traces (not collected by pytest).

    .venv/bin/python -m tests.pipelines.root_cause.bench_process
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.config import decode
from collector.model import Origin, Trace, make_origin, make_trace
from pipelines.root_cause import Config, RootCauseProcessor, factory
from tests.pipelines import RecordingConsumer, make_settings
from tests.pipelines.root_cause import CLIENT, ERROR, SERVER, resource

TRACES = 3000
SPANS = 10
# Origins are interned by the trace buffer: every trace of a service shares one (and its decoded resource).
ORIGINS = {f"svc{i}": make_origin(resource(f"svc{i}")) for i in range(3)}


def make(errors: bool, int_two: bool = False) -> Trace:
    tid = os.urandom(16)
    ids = [os.urandom(8) for _ in range(SPANS)]
    by_service: dict[str, list[Span]] = {}
    for i in range(SPANS):
        s = Span(trace_id=tid, span_id=ids[i], parent_span_id=ids[(i - 1) // 2] if i else b"", name=f"op{i}",
                 kind=SERVER if i % 2 else CLIENT, start_time_unix_nano=1_700_000_000_000_000_000 + i,
                 end_time_unix_nano=1_700_000_000_000_500_000 - i)
        for k in range(8):
            s.attributes.append(KeyValue(key=f"attr.key{k}", value=AnyValue(string_value=f"value-{k}-{i}")))
        if int_two:
            s.attributes[0].value.int_value = 2
        if errors and i in (0, 1, 3, 7):
            s.status.code = ERROR
        by_service.setdefault(f"svc{i % 3}", []).append(s)
    groups: list[tuple[Origin, list[Span]]] = [(ORIGINS[name], spans) for name, spans in by_service.items()]
    return make_trace(groups)


def measure(label: str, build: Callable[[], Trace], proc: RootCauseProcessor, predecode: bool) -> None:
    best = float("inf")
    for _ in range(7):
        traces = [build() for _ in range(TRACES)]
        if predecode:
            for t in traces:
                t.groups()
        started = time.process_time()
        proc.process_traces(traces)
        best = min(best, time.process_time() - started)
    print(f"{label:60s} {best / (TRACES * SPANS) * 1e6:6.2f} µs/span")


def main() -> None:
    proc = factory.create(make_settings("root_cause"), decode(Config, {}), RecordingConsumer())
    assert isinstance(proc, RootCauseProcessor)
    measure("error-free, not decoded (byte scan only)", lambda: make(False), proc, False)
    measure("error-free, already decoded by groups()", lambda: make(False), proc, True)
    measure("error-free, int attribute 2 (byte scan hit), decoded", lambda: make(False, True), proc, True)
    measure("error-free, int attribute 2 (byte scan hit), incl. decoding", lambda: make(False, True), proc, False)
    measure("4 spans in error, already decoded, annotate", lambda: make(True), proc, True)
    measure("4 spans in error, incl. decoding, annotate", lambda: make(True), proc, False)
    traces = [make(False) for _ in range(TRACES)]
    started = time.process_time()
    for tr in traces:
        tr.groups()
    per_span = (time.process_time() - started) / (TRACES * SPANS) * 1e6
    print(f"{'(reference: groups() decoding alone)':60s} {per_span:6.2f} µs/span")

if __name__ == "__main__":
    main()
