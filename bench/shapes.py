"""The shape matrix: the same pipelines on payloads of many shapes,
``python -m bench.shapes [--rounds N] [--requests N] [--shape NAME ...]
[--scenario pass|tail|full|servicegraph|spanmetrics|trace_tests|trace_tests_mix|trace_tests_idle ...]
[--jit on|off ...]``.

Every shape is the reference load (``bench.reference``: requests of 500 spans, traces of 10 spans, 5 services,
8 attributes a span) changed in one way that instrumentations and encoders really produce: ``error = false``
on every span (bool, string, int), attributes and events named like error keys, traces of 1, 100 and 1,000
spans, 50 resources a request, one ``ScopeSpans`` a span, events and links, 4 KB attribute values, a fan-out
failure (every span of the failing trace in error), the status written before the attributes, the flags
written after the parent id (protobuf.js's declaration order), OTLP/JSON over HTTP, and calls between
services as instrumented clients report them (``client_server``: a CLIENT span and its SERVER child). Trace
trees are real (each span's parent is in the trace); 2 % of traces fail: a leaf and its ancestors in error.

Each shape goes through ``pass`` (batch), ``tail`` (tail_sampling) and ``full`` (root_cause, alert_routing,
tail_sampling) into a Kafka broker (and, when asked, ``servicegraph`` and ``spanmetrics``: ``full`` behind
that processor, as ``bench.run``'s ``full_servicegraph`` and ``full_spanmetrics``; ``trace_tests``,
``trace_tests_mix`` and ``trace_tests_idle``: ``full`` with ``trace_tests`` and the 20 definitions of
``bench.run``'s ``full_trace_tests*``, which the shapes' span names and services match), with the compiled walk
(``jit on``) and without (``TRACETRIAGE_JIT=0``: what a plain install runs). A sender process
(``python -m bench.shapes send``) sends the requests over gRPC, or OTLP/JSON over HTTP for ``json``. One
collector per scenario and setting serves every shape in turn, after a throw-away pass (so that no shape pays
the fresh collector's heap growth); rounds interleave everything, so a slow spell of a shared machine hits
every cell alike.

Figures, one JSON line per cell and round, then one ``median`` line per cell: spans per collector
CPU-second, and that divided by protobuf's parse rate of the same shape's requests measured in this process
in the same round (``of_parse``; for ``json``, of the same spans as protobuf). Each cell line also gives
``stage_cpu_share``: the CPU time each stage that counts its own spent (``tracetriage_trace_stage_cpu_seconds``,
``tracetriage_span_stage_cpu_seconds``) over the collector's in that cell, as ``bench.run`` does: a stage's
cost measured inside one run, which a slow spell of the machine moves much less than two runs' difference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from bench.harness import ROOT, Collector, emit, free_port, tansu

SERVICES = ("frontend", "checkout", "cart", "payment", "inventory")
SCENARIOS = {"pass": "passthrough", "tail": "tail_sampling", "full": "full", "servicegraph": "full_servicegraph",
             "spanmetrics": "full_spanmetrics", "trace_tests": "full_trace_tests",
             "trace_tests_mix": "full_trace_tests_mix", "trace_tests_idle": "full_trace_tests_idle"}
DEFAULT_SCENARIOS = ("pass", "tail", "full")
DECISION_WAIT_S = 2.0
FAIL_EVERY = 50  # one trace in 50 fails (2 %)


@dataclass(frozen=True)
class Shape:
    """How a shape differs from the reference load."""

    spans_per_trace: int = 10
    spans_per_request: int = 500
    resources: int = 5
    scope_per_span: bool = False
    error_value: AnyValue | None = None  # ``error`` on every span not in error
    lookalikes: bool = False  # attributes and an event named like error keys
    events_links: bool = False
    long_value: int = 0  # bytes of one more attribute value
    fan_out: bool = False  # every span of a failing trace in error
    order: str = ""  # "status_first" | "flags_middle": fields as such encoders write them
    json: bool = False
    client_server: bool = False  # after the root, pairs of a CLIENT span and its SERVER child (a call)
    notes: str = field(default="", compare=False)


SHAPES: dict[str, Shape] = {
    "baseline": Shape(notes="the reference load with real trees, error status only on failing spans"),
    "error_false_bool": Shape(error_value=AnyValue(bool_value=False)),
    "error_false_string": Shape(error_value=AnyValue(string_value="false")),
    "error_false_int": Shape(error_value=AnyValue(int_value=0)),
    "error_lookalikes": Shape(lookalikes=True),
    "trace_1": Shape(spans_per_trace=1),
    "trace_100": Shape(spans_per_trace=100),
    "trace_1000": Shape(spans_per_trace=1000, spans_per_request=1000),
    "resources_50": Shape(resources=50),
    "scope_per_span": Shape(scope_per_span=True),
    "events_links": Shape(events_links=True),
    "long_values": Shape(long_value=4096),
    "fan_out": Shape(fan_out=True),
    "status_first": Shape(order="status_first", error_value=AnyValue(bool_value=False)),
    "flags_middle": Shape(order="flags_middle"),
    "json": Shape(json=True),
    "client_server": Shape(client_server=True),
}

_MARK = b"\xab\xcd"  # trace id markers: _MARK, the trace's index (2 bytes), then 12 bytes of 0x5a


def _marker(t: int) -> bytes:
    return _MARK + t.to_bytes(2, "big") + b"\x5a" * 12


def _parent(i: int, client_server: bool = False) -> int:
    """Span ``i``'s parent in a trace: a tree of fan-out 3 (span 0 is the root); for ``client_server``, an
    odd span (a CLIENT) is the root's child and an even one (its SERVER) the child of the span before it."""
    if client_server:
        return 0 if i % 2 else i - 1
    return (i - 1) // 3


def _kind(i: int, client_server: bool) -> Span.SpanKind.ValueType:
    return Span.SPAN_KIND_CLIENT if client_server and i % 2 else Span.SPAN_KIND_SERVER


def build_request(shape: Shape, first_trace: int, seed: int) -> ExportTraceServiceRequest:
    """One request of ``shape``; its traces are numbered from ``first_trace`` (for the 2 % that fail) and
    their ids are markers (:func:`_marker`) for :class:`ShapeLoad` to replace."""
    rnd = random.Random(seed)
    n, per = shape.spans_per_request, shape.spans_per_trace
    base = 1_700_000_000_000_000_000
    spans: list[Span] = []
    for g in range(n):
        t, d = divmod(g, per)
        if d == 0:
            ids = [rnd.randbytes(7) + b"\x01" for _ in range(min(per, n - g))]
            failing = (first_trace + t) % FAIL_EVERY == 0
            leaf = len(ids) - 1
            in_error = set(range(len(ids))) if shape.fan_out else {leaf}
            if not shape.fan_out:
                k = leaf
                while k > 0:
                    k = _parent(k, shape.client_server)
                    in_error.add(k)
        s = Span(trace_id=_marker(t), span_id=ids[d], parent_span_id=ids[_parent(d, shape.client_server)] if d else b"",
                 name="GET /shop" if d == 0 else "GET /cart", kind=_kind(d, shape.client_server),
                 start_time_unix_nano=base + d * 1000, end_time_unix_nano=base + 20_000_000 - d * 1000)
        for key, text in (("http.request.method", "GET"), ("http.route", "/cart"), ("url.scheme", "https"),
                          ("server.address", "shop"), ("user_agent.original", "curl/8"),
                          ("network.protocol.version", "1.1")):
            s.attributes.append(KeyValue(key=key, value=AnyValue(string_value=text)))
        s.attributes.append(KeyValue(key="http.response.status_code", value=AnyValue(int_value=200)))
        s.attributes.append(KeyValue(key="server.port", value=AnyValue(int_value=443)))
        error = failing and d in in_error
        if shape.error_value is not None:
            s.attributes.append(KeyValue(key="error", value=AnyValue(bool_value=True) if error else shape.error_value))
        if shape.lookalikes:
            s.attributes.append(KeyValue(key="error.kind", value=AnyValue(string_value="none")))
            s.attributes.append(KeyValue(key="errors", value=AnyValue(int_value=0)))
            ev = s.events.add(time_unix_nano=base + 5000, name="error")
            ev.attributes.append(KeyValue(key="error.object", value=AnyValue(string_value="none")))
        if shape.events_links:
            ev = s.events.add(time_unix_nano=base + 4000, name="cache.miss")
            ev.attributes.append(KeyValue(key="cache.key", value=AnyValue(string_value="cart:42")))
            ev.attributes.append(KeyValue(key="cache.tier", value=AnyValue(int_value=2)))
            s.events.add(time_unix_nano=base + 6000, name="log").attributes.append(
                KeyValue(key="message", value=AnyValue(string_value="loaded the cart")))
            s.links.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8))
        if shape.long_value:
            s.attributes.append(KeyValue(key="db.statement", value=AnyValue(string_value="x" * shape.long_value)))
        if error:
            s.status.code = Status.STATUS_CODE_ERROR
            s.status.message = "upstream failed"
        elif shape.order == "status_first":
            s.status.SetInParent()  # an encoder that always writes the status
        if shape.order == "flags_middle":
            s.flags = 0x301
        spans.append(s)
    req = ExportTraceServiceRequest()
    per_resource = -(-n // shape.resources)
    for r in range(shape.resources):
        part = spans[r * per_resource:(r + 1) * per_resource]
        if not part:
            break
        rs: ResourceSpans = req.resource_spans.add()
        service = SERVICES[r % len(SERVICES)] if shape.resources <= len(SERVICES) else f"{SERVICES[r % 5]}-{r}"
        for key, text in (("service.name", service), ("service.version", "1.4.2"), ("host.name", f"{service}-7d9f")):
            rs.resource.attributes.append(KeyValue(key=key, value=AnyValue(string_value=text)))
        groups = [[s] for s in part] if shape.scope_per_span else [part]
        for group in groups:
            ss: ScopeSpans = rs.scope_spans.add()
            ss.scope.name = "flask"
            ss.spans.extend(group)
    return req


def _frame(tag: int, payload: bytes) -> bytes:
    from collector.wire import frame

    framed: bytes = frame(tag, payload)
    return framed


def encode(req: ExportTraceServiceRequest, order: str) -> bytes:
    """The request's protobuf bytes, each span's top-level fields in ``order`` ("": by field number, as
    protobuf writes them; "status_first": the status right after the end time, before the attributes;
    "flags_middle": the flags right after the parent span id, as protobuf.js writes them)."""
    if not order:
        plain: bytes = req.SerializeToString()
        return plain
    from collector.wire import read_field

    out = []
    for rs in req.resource_spans:
        rparts = [_frame(0x0A, rs.resource.SerializeToString())]
        for ss in rs.scope_spans:
            sparts = [_frame(0x0A, ss.scope.SerializeToString())]
            for s in ss.spans:
                data = s.SerializeToString()
                fields: list[tuple[int, bytes]] = []
                pos = 0
                while pos < len(data):
                    number, _, _, end = read_field(data, pos, len(data))
                    fields.append((number, data[pos:end]))
                    pos = end
                moved = 15 if order == "status_first" else 16  # status, flags
                after = 8 if order == "status_first" else 4  # end time, parent span id
                keep = [f for f in fields if f[0] != moved]
                pick = [f for f in fields if f[0] == moved]
                at = max(i + 1 for i, f in enumerate(keep) if f[0] <= after)
                sparts.append(_frame(0x12, b"".join(b for _, b in keep[:at] + pick + keep[at:])))
            rparts.append(_frame(0x12, b"".join(sparts)))
        out.append(_frame(0x0A, b"".join(rparts)))
    return b"".join(out)


class ShapeLoad:
    """Serialized requests of one shape with fresh trace ids for every request (patched into the bytes at
    the markers' offsets, hex for JSON)."""

    def __init__(self, name: str, seed: int = 1) -> None:
        self.shape = shape = SHAPES[name]
        per_request = max(1, shape.spans_per_request // shape.spans_per_trace)
        count = max(8, FAIL_EVERY // per_request)  # enough templates that 2 % of traces fail
        self.templates: list[tuple[bytearray, list[tuple[int, int]], int]] = []
        self.protobuf: list[bytes] = []  # the same requests as protobuf (for the parse rate)
        for k in range(count):
            req = build_request(shape, k * per_request, seed * 1000 + k)
            data = encode(req, shape.order)
            self.protobuf.append(data)
            if shape.json:
                from collector.otlpjson import encode_request

                data = encode_request(req)
            markers = [_marker(t).hex().encode() if shape.json else _marker(t) for t in range(per_request)]
            offsets = []
            for t, m in enumerate(markers):
                i = data.find(m)
                while i >= 0:
                    offsets.append((i, t))
                    i = data.find(m, i + len(m))
            assert len(offsets) == shape.spans_per_request, (name, len(offsets))
            self.templates.append((bytearray(data), offsets, per_request))
        self.spans_per_request = shape.spans_per_request
        self._n = 0

    def requests(self, count: int) -> Iterator[bytes]:
        for _ in range(count):
            data, offsets, traces = self.templates[self._n % len(self.templates)]
            self._n += 1
            ids = [os.urandom(16) for _ in range(traces)]
            for off, t in offsets:
                if self.shape.json:
                    data[off:off + 32] = ids[t].hex().encode()
                else:
                    data[off:off + 16] = ids[t]
            yield bytes(data)


def parse_rate(load: ShapeLoad, seconds: float = 0.3) -> float:
    """Protobuf's decode rate of the shape's requests (spans a second, this process)."""
    done = 0
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        for p in load.protobuf:
            ExportTraceServiceRequest.FromString(p)
            done += load.spans_per_request
    return done / (time.process_time() - t0)


# -- the sender process --------------------------------------------------------------------------------


async def _send(name: str, endpoint: str, requests: int, concurrency: int) -> dict[str, float]:
    load = ShapeLoad(name)
    payloads = iter(list(load.requests(requests)))
    retries = 0
    t0 = time.perf_counter()
    if load.shape.json:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async def post() -> None:
                nonlocal retries
                for payload in payloads:
                    while True:
                        async with session.post(f"http://{endpoint}/v1/traces", data=payload,
                                                headers={"Content-Type": "application/json"}) as r:
                            body = await r.read()
                            if r.status == 200:
                                break
                            if r.status not in (429, 503):
                                raise RuntimeError(f"HTTP {r.status}: {body[:300]!r}")
                        retries += 1
                        await asyncio.sleep(0.05)

            await asyncio.gather(*(post() for _ in range(concurrency)))
    else:
        import grpc

        async with grpc.aio.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
            call = ch.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

            async def worker() -> None:
                nonlocal retries
                for payload in payloads:
                    while True:
                        try:
                            await call(payload, timeout=30)
                            break
                        except grpc.aio.AioRpcError as e:
                            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                                raise
                            retries += 1
                            await asyncio.sleep(0.05)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"requests": requests, "spans": requests * load.spans_per_request, "retries": retries,
            "wall_s": time.perf_counter() - t0}


def run_sender(name: str, endpoint: str, requests: int, concurrency: int = 4) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.shapes", "send", "--shape", name, "--endpoint", endpoint,
                          "--requests", str(requests), "--concurrency", str(concurrency)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode:
        raise RuntimeError(f"sender failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- the collector side --------------------------------------------------------------------------------


def config(scenario: str, grpc_port: int, http_port: int, metrics_port: int, brokers: str) -> str:
    from bench.run import config as run_config

    text = (run_config("memory", grpc_port, metrics_port, brokers, decision_wait="3600s") if scenario == "memory"
            else run_config(SCENARIOS[scenario], grpc_port, metrics_port, brokers))
    grpc_line = f'      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 64}}'
    old = f'      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 16}}'
    assert old in text
    return text.replace(old, f'{grpc_line}\n      http: {{endpoint: "127.0.0.1:{http_port}"}}')


def _wait(cond: Callable[[], bool], timeout: float, every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise TimeoutError("the collector did not drain in time")


class Cell:
    """One collector (a scenario, jit on or off) that the shapes take turns on."""

    def __init__(self, scenario: str, jit: bool, brokers: str, workdir: Path) -> None:
        self.scenario, self.jit = scenario, jit
        self.grpc, self.http, metrics = free_port(), free_port(), free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        old = os.environ.get("TRACETRIAGE_JIT")
        os.environ["TRACETRIAGE_JIT"] = "1" if jit else "0"
        try:
            self.col = Collector(config(scenario, self.grpc, self.http, metrics, brokers), workdir, metrics)
        finally:
            if old is None:
                del os.environ["TRACETRIAGE_JIT"]
            else:
                os.environ["TRACETRIAGE_JIT"] = old
        self.col.wait_ready(60)
        self.accepted = 0.0

    def measure(self, name: str, requests: int) -> tuple[int, float, dict[str, float]]:
        """(spans sent, collector CPU seconds, CPU seconds of each stage that counts its own) for ``requests``
        requests of shape ``name``."""
        col = self.col
        endpoint = f"127.0.0.1:{self.http if SHAPES[name].json else self.grpc}"
        warm = run_sender(name, endpoint, 2)  # connections, lazy imports, this shape's first request
        self._drain(warm["spans"])
        # Quiet first: the previous shape's last work (its export, freeing its requests) is not this one's.
        deadline = time.monotonic() + 10
        cpu0 = col.cpu()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            cpu1 = col.cpu()
            if cpu1 - cpu0 <= 0.02:
                break
            cpu0 = cpu1
        from bench.run import stage_cpu

        cpu0 = col.cpu()
        stage0 = stage_cpu(col.scrape())
        stats = run_sender(name, endpoint, requests)
        if self.scenario != "pass":
            time.sleep(DECISION_WAIT_S)
        self._drain(stats["spans"])
        cpu = col.cpu() - cpu0
        return int(stats["spans"]), cpu, {k: v - stage0.get(k, 0.0) for k, v in stage_cpu(col.scrape()).items()}

    def _drain(self, spans: float) -> None:
        self.accepted += spans
        col = self.col

        def drained() -> bool:
            text = col.scrape()
            return (col.metric("otelcol_receiver_accepted_spans_total", text) >= self.accepted
                    and col.metric("tracetriage_trace_buffer_spans", text) == 0
                    and col.metric("otelcol_exporter_queue_size", text) == 0
                    and col.metric("otelcol_processor_batch_pending_spans", text) == 0)

        _wait(drained, 180, every=0.5)

    def stop(self) -> None:
        self.col.stop()


def matrix(shapes: list[str], scenarios: list[str], jits: list[bool], rounds: int, requests: int) -> None:
    loads = {name: ShapeLoad(name) for name in shapes}

    def count(name: str) -> int:  # requests of a shape: as many spans as ``requests`` reference requests
        return max(2, requests * 500 // loads[name].spans_per_request)

    results: dict[tuple[str, str, bool], list[tuple[float, float]]] = {}
    with tansu() as brokers, tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            rates = {name: parse_rate(load) for name, load in loads.items()}
            for jit in jits:
                for scenario in scenarios:
                    cell = Cell(scenario, jit, brokers, Path(tmp) / f"{scenario}-{jit}-{k}")
                    try:
                        order = shapes if k % 2 == 0 else shapes[::-1]
                        # A throw-away pass first: a fresh collector's first load grows its heap (page faults,
                        # arenas), which made whichever shape came first cost up to twice as much.
                        cell.measure(order[0], count(order[0]))
                        for name in order:
                            spans, cpu, stages = cell.measure(name, count(name))
                            rate = spans / cpu
                            results.setdefault((name, scenario, jit), []).append((rate, rate / rates[name]))
                            emit({"bench": "shape", "shape": name, "scenario": scenario, "jit": jit,
                                  "round": k + 1, "spans": spans, "collector_cpu_s": round(cpu, 3),
                                  "spans_per_cpu_s": round(rate), "of_parse": round(rate / rates[name], 4),
                                  "parse_spans_per_s": round(rates[name]),
                                  "stage_cpu_share": {stage: round(v / cpu, 4) for stage, v in sorted(stages.items())}})
                    finally:
                        cell.stop()
    for (name, scenario, jit), runs in results.items():
        spans_per_s = sorted(r for r, _ in runs)
        shares = sorted(s for _, s in runs)
        emit({"bench": "shape_median", "shape": name, "scenario": scenario, "jit": jit, "runs": len(runs),
              "spans_per_cpu_s": round(spans_per_s[len(runs) // 2]), "of_parse": round(shares[len(runs) // 2], 4),
              "min": round(spans_per_s[0]), "max": round(spans_per_s[-1])})


MEMORY_BYTES = 150 << 20  # wire bytes buffered a shape (memory): 100,000 spans of the reference's size


def memory(shapes: list[str]) -> None:
    """Bytes of collector memory (RSS) per buffered span, per shape: tail_sampling holds every span
    (decision_wait 1 h) while about MEMORY_BYTES of requests arrive."""
    with tansu() as brokers, tempfile.TemporaryDirectory() as tmp:
        for name in shapes:
            load = ShapeLoad(name)
            per_request = len(load.protobuf[0])
            requests = max(4, min(400, MEMORY_BYTES // per_request // 2))
            grpc, http, metrics = free_port(), free_port(), free_port()
            col = Collector(config("memory", grpc, http, metrics, brokers), Path(tmp), metrics)
            try:
                col.wait_ready(60)
                endpoint = f"127.0.0.1:{http if load.shape.json else grpc}"
                run_sender(name, endpoint, 2)
                time.sleep(1)
                rss0, spans0 = col.rss(), col.metric("tracetriage_trace_buffer_spans")
                run_sender(name, endpoint, requests)
                time.sleep(1)
                spans = col.metric("tracetriage_trace_buffer_spans") - spans0
                rss1 = col.rss()
                emit({"bench": "shape_memory", "shape": name, "buffered_spans": int(spans),
                      "wire_bytes_per_span": round(per_request / load.spans_per_request, 1),
                      "bytes_per_buffered_span": round((rss1 - rss0) / max(spans, 1), 1)})
            finally:
                col.stop()


def json_decode(rounds: int) -> None:
    """OTLP/JSON decoding alone, in this process (spans a CPU-second, interleaved rounds): ``json.loads`` and
    msgspec's ``decode`` of the bodies to Python objects (what a decoder that builds a document costs before
    any walk), the collector's ``request_bytes`` (msgspec's typed decoding for these canonical bodies), and
    ``json_format`` (what the collector used before the walk; fewer bodies, it is slow)."""
    import msgspec

    from collector.otlpjson import reference_request_bytes, request_bytes

    load = ShapeLoad("json")
    bodies = list(load.requests(40))
    per = load.spans_per_request
    request_bytes(bodies[0])  # the attribute memo filled, as in a running collector

    def rate(fn: Callable[[bytes], object], items: list[bytes]) -> float:
        t0 = time.process_time()
        for b in items:
            fn(b)
        return len(items) * per / (time.process_time() - t0)

    for k in range(rounds):
        emit({"bench": "json_decode", "round": k + 1, "json_loads": round(rate(json.loads, bodies)),
              "msgspec": round(rate(msgspec.json.Decoder().decode, bodies)),
              "request_bytes": round(rate(request_bytes, bodies)),
              "json_format": round(rate(reference_request_bytes, bodies[:4]))})


def table(lines: list[dict[str, Any]]) -> str:
    """The Markdown table of the ``shape_median`` lines: one row a shape, one column a cell."""
    cells = sorted({(ln["scenario"], ln["jit"]) for ln in lines}, key=lambda c: (not c[1], list(SCENARIOS).index(c[0])))
    head = "| shape | " + " | ".join(f"{s} {'jit' if j else 'no jit'}" for s, j in cells) + " |"
    rows = [head, "|" + "---|" * (len(cells) + 1)]
    by = {(ln["shape"], ln["scenario"], ln["jit"]): ln for ln in lines}
    for name in SHAPES:
        if not any((name, s, j) in by for s, j in cells):
            continue
        row = []
        for s, j in cells:
            ln = by.get((name, s, j))
            row.append(f"{ln['spans_per_cpu_s'] / 1000:.0f} k ({ln['of_parse']:.2f})" if ln else "")
        rows.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("send", help="(the sender process)")
    s.add_argument("--shape", required=True, choices=list(SHAPES))
    s.add_argument("--endpoint", required=True)
    s.add_argument("--requests", type=int, required=True)
    s.add_argument("--concurrency", type=int, default=4)
    t = sub.add_parser("table", help="the Markdown table of the median lines read from stdin")
    t.set_defaults()
    sub.add_parser("json-decode", help="OTLP/JSON decoding alone: json.loads, msgspec, request_bytes, json_format")
    p.add_argument("--shape", action="append", choices=list(SHAPES))
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    p.add_argument("--jit", action="append", choices=["on", "off"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=40, help="requests of 500 spans a cell (default 40)")
    p.add_argument("--memory", action="store_true", help="bytes per buffered span of each shape instead")
    a = p.parse_args()
    if a.command == "send":
        print(json.dumps(asyncio.run(_send(a.shape, a.endpoint, a.requests, a.concurrency))))
        return
    if a.command == "table":
        lines = [json.loads(x) for x in sys.stdin if x.strip().startswith("{")]
        print(table([ln for ln in lines if ln.get("bench") == "shape_median"]))
        return
    if a.command == "json-decode":
        json_decode(max(1, a.rounds))
        return
    if a.memory:
        memory(a.shape or list(SHAPES))
        return
    matrix(a.shape or list(SHAPES), a.scenario or list(DEFAULT_SCENARIOS),
           [j == "on" for j in (a.jit or ["on", "off"])], a.rounds, a.requests)


if __name__ == "__main__":
    main()
