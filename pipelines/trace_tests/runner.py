"""``tracetriage test run``: fire each test's trigger, collect its trace, run its specs.

* **Live** (default): an embedded OTLP receiver (gRPC and HTTP, the ``otlp`` receiver itself) takes the spans
  the system under test exports. For each definition the runner picks a fresh trace id and trigger span id,
  fires the trigger (an HTTP request, or a gRPC call: :mod:`pipelines.trace_tests.grpc_trigger`) with a W3C
  ``traceparent`` naming them, and collects that trace's spans until none has arrived for ``--settle`` (bounded
  by ``--timeout``). The trace gets Tracetest's trigger span
  (``name="Tracetest trigger"``, with ``tracetest.response.*``) as the parent of the system's root.
  ``--save-traces FILE`` writes each collected trace, trigger span included, as OTLP/JSON lines (the ``file``
  exporter's format).
* **Through a collector** (``--collector URL``): no receiver here; each trigger is fired as above and the
  trace's results are read from the ``trace_tests`` processor of a running tracetriage (its telemetry server,
  ``service.telemetry.debug`` on, loading the same definitions); specs about the trigger are checked here.
* **Offline** (``--traces FILE``): OTLP/JSON lines (the ``file`` exporter's output, or ``--save-traces``'),
  grouped by trace id; every definition runs on each trace its first spec's selector selects a span of, one
  result per trace and definition. A trace saved by a live run names on its trigger span the test that fired it
  (``tracetriage.test.name``), and only that test runs on it. A definition that no trace matches is an error.

Only spans of the traces being waited for are kept (``--max-spans`` per trace; more are counted and reported).
Exit code 0 when every spec passed, 1 when any failed or a run could not complete, 2 for a definition that
cannot be read or is not supported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from collector.component import ComponentID, Host, Kind, Settings
from collector.config.schema import ByteSize
from collector.consumer import Capabilities
from collector.model import SpanBatch
from collector.otlpjson import decode_request, encode_request
from collector.telemetry import Telemetry
from pipelines.trace_tests.definition import DefinitionError, GrpcTrigger, HttpTrigger, TestDefinition, load_definition
from pipelines.trace_tests.evaluate import SpecResult, TestResult, applies_to, run_spec, run_test
from pipelines.trace_tests.library import live_applicable
from pipelines.trace_tests.report import junit_xml, result_from_json, summary, text_report
from pipelines.trace_tests.spans import (
    TRIGGER_SERVICE,
    TRIGGER_SPAN_NAME,
    TestSpan,
    TestTrace,
    attributes,
    group_by_trace,
    trigger_span_proto,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_BODY = 1024 * 1024  # bytes of the trigger's response body kept for tracetest.response.body
MAX_LINE = 64 * 1024 * 1024
# On the trigger span of a saved trace: the test that fired it (--traces runs that test only on the trace).
TEST_NAME_ATTR = "tracetriage.test.name"

if TYPE_CHECKING:
    from pipelines.trace_tests.grpc_trigger import Protos

log = logging.getLogger("tracetriage.test")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="test_command", metavar="SUBCOMMAND", required=True)
    run = sub.add_parser("run", help="run trace-based tests (Tracetest definition files)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--definition", "-d", nargs="+", action="extend", required=True, metavar="FILE",
                     help="Tracetest test definition (type: Test); repeatable")
    run.add_argument("--junit", metavar="OUT.xml", help="write a JUnit XML report here")
    run.add_argument("--traces", metavar="FILE", help="evaluate offline against OTLP/JSON lines (no trigger)")
    run.add_argument("--save-traces", metavar="FILE", help="live: write each collected trace as OTLP/JSON lines")
    run.add_argument("--collector", metavar="URL",
                     help="no embedded receiver: read each trace's results from a running tracetriage's trace_tests "
                          "processor (its telemetry server, debug on: URL/api/trace-tests/{trace_id})")
    run.add_argument("--otlp-grpc-endpoint", default="localhost:4317", metavar="HOST:PORT",
                     help="embedded receiver's OTLP/gRPC address ('' to disable; default localhost:4317)")
    run.add_argument("--otlp-http-endpoint", default="localhost:4318", metavar="HOST:PORT",
                     help="embedded receiver's OTLP/HTTP address ('' to disable; default localhost:4318)")
    run.add_argument("--settle", type=float, default=1.0, metavar="SECONDS",
                     help="a trace is complete when no span of it has arrived for this long (default 1)")
    run.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                     help="longest wait for a trace, from its trigger (default 30)")
    run.add_argument("--max-spans", type=int, default=100_000, metavar="N",
                     help="spans kept per trace (default 100000)")


@dataclass
class _Collected:
    spans: list[tuple[Resource, Span]] = field(default_factory=list)
    last: float = 0.0
    dropped: int = 0


class SpanSink:
    """The embedded receiver's consumer: keeps the spans of the traces being waited for, drops the rest."""

    def __init__(self, max_spans: int) -> None:
        self.max_spans = max_spans
        self.traces: dict[bytes, _Collected] = {}
        self.ignored = 0

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def want(self, trace_id: bytes) -> None:
        self.traces[trace_id] = _Collected()

    def forget(self, trace_id: bytes) -> None:
        self.traces.pop(trace_id, None)

    async def consume_traces(self, batch: SpanBatch) -> None:
        try:
            now = time.monotonic()
            for rs in batch.request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        got = self.traces.get(span.trace_id)
                        if got is None:
                            self.ignored += 1
                            continue
                        if len(got.spans) >= self.max_spans:
                            got.dropped += 1
                            continue
                        got.spans.append((rs.resource, span))
                        got.last = now
        finally:
            batch.release()


def _request_of(trace: Sequence[tuple[Resource, Span]]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    by_resource: dict[bytes, ResourceSpans] = {}
    for resource, span in trace:
        key = resource.SerializeToString(deterministic=True)
        rs = by_resource.get(key)
        if rs is None:
            rs = by_resource[key] = req.resource_spans.add()
            rs.resource.CopyFrom(resource)
            rs.scope_spans.add()
        rs.scope_spans[0].spans.append(span)
    return req


def _trigger_resource() -> Resource:
    r = Resource()
    r.attributes.append(KeyValue(key="service.name"))
    r.attributes[0].value.string_value = TRIGGER_SERVICE
    return r


async def _fire_http(trigger: HttpTrigger, traceparent: str, limit: float) -> dict[str, str | int | float | bool]:
    import aiohttp

    timeout = limit
    headers = dict(trigger.headers)
    headers["traceparent"] = traceparent
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, session.request(
            trigger.method, trigger.url, headers=headers, data=trigger.body.encode() if trigger.body else None
    ) as resp:
        body = await resp.content.read(MAX_BODY)
        return {"tracetest.response.status": resp.status,
                "tracetest.response.body": body.decode("utf-8", "replace"),
                "tracetest.response.headers": json.dumps([{"key": k, "value": v} for k, v in resp.headers.items()])}


class TriggerFailed(Exception):
    """The trigger got no response (connection, protocol, a gRPC trigger's proto or request); the message says
    which trigger and why."""


class Triggers:
    """Fires a test's trigger with a ``traceparent``, bounded by ``--timeout``; gRPC protos compile once a run."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._protos: Protos | None = None  # made at the first gRPC trigger

    async def fire(self, trigger: HttpTrigger | GrpcTrigger, traceparent: str) -> dict[str, str | int | float | bool]:
        if isinstance(trigger, GrpcTrigger):
            from pipelines.trace_tests.grpc_trigger import GrpcTriggerError, Protos, fire_grpc

            if self._protos is None:
                self._protos = Protos()
            try:
                return await fire_grpc(trigger, traceparent, self.timeout, self._protos)
            except GrpcTriggerError as e:
                raise TriggerFailed(f"trigger grpc {trigger.address} {trigger.method} failed: {e}") from None
        import aiohttp

        try:
            return await _fire_http(trigger, traceparent, self.timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise TriggerFailed(f"trigger {trigger.method} {trigger.url} failed: {e!r}") from None


class LiveRun:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.fire = Triggers(args.timeout).fire
        self.sink = SpanSink(args.max_spans)
        self.saved: list[ExportTraceServiceRequest] = []

    async def run(self, tests: Sequence[TestDefinition]) -> list[TestResult]:
        from collector.receivers.otlp import GRPCConfig, HTTPConfig, OTLPReceiverConfig, ProtocolsConfig, factory

        a = self.args
        protocols = ProtocolsConfig(
            grpc=GRPCConfig(endpoint=a.otlp_grpc_endpoint) if a.otlp_grpc_endpoint else None,
            http=HTTPConfig(endpoint=a.otlp_http_endpoint, max_request_body_size=ByteSize(20 * 1024 * 1024))
            if a.otlp_http_endpoint else None)
        settings = Settings(ComponentID("otlp", "test"), Kind.RECEIVER, Telemetry(), log)
        receiver = factory.create(settings, OTLPReceiverConfig(protocols=protocols), self.sink)
        await receiver.start(Host())
        try:
            print(f"embedded OTLP receiver: grpc {a.otlp_grpc_endpoint or 'off'}, http {a.otlp_http_endpoint or 'off'}",
                  file=sys.stderr)
            return [await self.one(t) for t in tests]
        finally:
            await receiver.shutdown()

    async def one(self, test: TestDefinition) -> TestResult:
        a = self.args
        trace_id, span_id = os.urandom(16), os.urandom(8)
        trigger = test.trigger
        if trigger is None:
            return TestResult(test, b"", (), "cannot be run live: it has no trigger (use --traces for recorded "
                                             "traces)")
        self.sink.want(trace_id)
        try:
            start = time.time_ns()
            try:
                response = await self.fire(trigger, f"00-{trace_id.hex()}-{span_id.hex()}-01")
            except TriggerFailed as e:
                return TestResult(test, trace_id, (), str(e))
            end = time.time_ns()
            got = await self._wait(trace_id)
            if not got.spans:
                return TestResult(test, trace_id, (), f"no span of trace {trace_id.hex()} arrived within "
                                                      f"{a.timeout:g}s (does the system export to this receiver?)")
            if got.dropped:
                print(f"warning: trace {trace_id.hex()}: {got.dropped} spans beyond --max-spans were dropped",
                      file=sys.stderr)
            trig = trigger_span_proto(trace_id, span_id, start, end, {**response, TEST_NAME_ATTR: test.name})
            spans = [*got.spans, (_trigger_resource(), trig)]
            self.saved.append(_request_of(spans))
            made = [TestSpan(s, attributes(r.attributes)) for r, s in spans]
            return run_test(test, TestTrace(trace_id, made))
        finally:
            self.sink.forget(trace_id)

    async def _wait(self, trace_id: bytes) -> _Collected:
        a = self.args
        deadline = time.monotonic() + a.timeout
        got = self.sink.traces[trace_id]
        while time.monotonic() < deadline:
            if got.spans and time.monotonic() - got.last >= a.settle:
                break
            await asyncio.sleep(min(0.05, a.settle / 4))
        return got


class CollectorRun:
    """``--collector URL``: fire each trigger, then read the trace's results from a running collector's
    ``trace_tests`` processor (which must load the same definitions). Specs about the trigger (its span, its
    response), which a live trace cannot have, are checked here on the trigger span."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = str(args.collector).rstrip("/")
        self.fire = Triggers(args.timeout).fire

    async def run(self, tests: Sequence[TestDefinition]) -> list[TestResult]:
        return [await self.one(t) for t in tests]

    async def one(self, test: TestDefinition) -> TestResult:
        import aiohttp

        a = self.args
        trigger = test.trigger
        if trigger is None:
            return TestResult(test, b"", (), "cannot be run: it has no trigger")
        trace_id, span_id = os.urandom(16), os.urandom(8)
        start = time.time_ns()
        try:
            response = await self.fire(trigger, f"00-{trace_id.hex()}-{span_id.hex()}-01")
        except TriggerFailed as e:
            return TestResult(test, trace_id, (), str(e))
        trig = TestSpan(trigger_span_proto(trace_id, span_id, start, time.time_ns(), response),
                        {"service.name": TRIGGER_SERVICE})
        local_trace = TestTrace(trace_id, [trig])
        try:
            remote = await self._poll(test.name, trace_id)
        except (aiohttp.ClientError, OSError, ValueError) as e:
            return TestResult(test, trace_id, (), f"cannot read results from {self.base}: {e!r}")
        if remote is None:
            return TestResult(test, trace_id, (), f"{self.base} has no result of this test for trace "
                                                  f"{trace_id.hex()} after {a.timeout:g}s (is its trace_tests "
                                                  "processor loading this definition, with debug on?)")
        got = {s.spec.name: s for s in result_from_json(remote, test).specs}
        specs: list[SpecResult] = []
        for spec in test.specs:
            if not live_applicable(spec):
                specs.append(run_spec(spec, local_trace))
            elif spec.name in got:
                specs.append(got[spec.name])
        return TestResult(test, trace_id, tuple(specs), str(remote.get("error", "")))

    async def _poll(self, name: str, trace_id: bytes) -> dict[str, Any] | None:
        import aiohttp

        deadline = time.monotonic() + self.args.timeout
        url = f"{self.base}/api/trace-tests/{trace_id.hex()}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while time.monotonic() < deadline:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        doc = await resp.json()
                        found = next((r for r in doc.get("results", []) if r.get("test") == name), None)
                        if found is not None:
                            return dict(found)
                    elif resp.status != 404:
                        raise ValueError(f"GET {url}: HTTP {resp.status}")
                await asyncio.sleep(0.25)
        return None


def read_traces(path: str) -> dict[bytes, list[TestSpan]]:
    """OTLP/JSON lines (``file`` exporter format) grouped by trace id; raises ValueError naming the line."""
    out: dict[bytes, list[TestSpan]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            if len(line) > MAX_LINE:
                raise ValueError(f"{path}:{n}: line longer than {MAX_LINE} bytes")
            try:
                req = decode_request(line)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: {e}") from None
            for tid, spans in group_by_trace(req.resource_spans).items():
                out.setdefault(tid, []).extend(spans)
    return out


def offline(tests: Sequence[TestDefinition], path: str) -> list[TestResult]:
    traces = read_traces(path)
    results: list[TestResult] = []
    matched: set[int] = set()
    for tid, spans in traces.items():
        tt = TestTrace(tid, spans)
        fired_by = next((s.attrs.get(TEST_NAME_ATTR) for s in spans if s.name == TRIGGER_SPAN_NAME
                         and s.service == TRIGGER_SERVICE), None)
        for i, test in enumerate(tests):
            if test.name == fired_by if fired_by is not None else applies_to(test, tt):
                matched.add(i)
                results.append(run_test(test, tt))
    for i, test in enumerate(tests):
        if i not in matched:
            results.append(TestResult(test, b"", (), f"no trace in {path} is one of its traces (its first spec's "
                                                     f"selector {test.specs[0].selector.text!r} selects no span)"))
    return results


def main(args: argparse.Namespace) -> int:
    tests: list[TestDefinition] = []
    for path in args.definition:
        try:
            tests.append(load_definition(path))
        except DefinitionError as e:
            print(f"tracetriage test: refused: {e}", file=sys.stderr)
            return EXIT_USAGE
    if args.settle <= 0 or args.timeout <= 0 or args.max_spans < 1:
        print("tracetriage test: --settle and --timeout must be > 0, --max-spans >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.traces:
        try:
            results = offline(tests, args.traces)
        except (OSError, ValueError) as e:
            print(f"tracetriage test: cannot read traces: {e}", file=sys.stderr)
            return EXIT_USAGE
    elif args.collector:
        results = asyncio.run(CollectorRun(args).run(tests))
    else:
        live = LiveRun(args)
        results = asyncio.run(live.run(tests))
        if args.save_traces:
            Path(args.save_traces).write_bytes(b"".join(encode_request(r) + b"\n" for r in live.saved))
    for r in results:
        sys.stdout.write(text_report(r))
    sys.stdout.write(summary(results))
    if args.junit:
        Path(args.junit).write_bytes(junit_xml(results))
    return EXIT_OK if results and all(r.passed for r in results) else EXIT_FAILED
