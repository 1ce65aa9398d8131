"""Helpers shared by the processor tests: span batches, settings and a scriptable recording consumer."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector import ComponentID, ConsumerError, Kind, PermanentError, Settings, SpanBatch, Telemetry
from collector.consumer import Capabilities

_span_ids = itertools.count(1)


def make_settings(component: str, telemetry: Telemetry | None = None) -> Settings:
    cid = ComponentID.parse(component)
    return Settings(
        id=cid, kind=Kind.PROCESSOR, telemetry=telemetry or Telemetry(),
        logger=logging.getLogger(f"test.{cid}"), pipeline="traces",
    )


def make_request(shape: Sequence[Sequence[int]], service_prefix: str = "svc") -> ExportTraceServiceRequest:
    """``shape[r][s]`` spans in scope ``s`` of resource ``r``; every span gets a fresh, unique span id."""
    req = ExportTraceServiceRequest()
    for r, scopes in enumerate(shape):
        rs = req.resource_spans.add()
        rs.schema_url = f"https://schema/{r}"
        service = AnyValue(string_value=f"{service_prefix}{r}")
        rs.resource.attributes.append(KeyValue(key="service.name", value=service))
        for s, count in enumerate(scopes):
            ss = rs.scope_spans.add()
            ss.scope.name = f"scope{r}.{s}"
            ss.schema_url = f"https://scope-schema/{s}"
            for _ in range(count):
                n = next(_span_ids)
                ss.spans.append(
                    Span(
                        trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name=f"op{n}",
                        kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=n, end_time_unix_nano=n + 1,
                    )
                )
    return req


def make_batch(spans: int = 1, shape: Sequence[Sequence[int]] | None = None) -> SpanBatch:
    """A batch as a receiver hands it on: wire bytes with a known span count."""
    req = make_request(shape if shape is not None else [[spans]])
    batch = SpanBatch.from_bytes(req.SerializeToString())
    return batch


def flat_spans(batches: Sequence[SpanBatch]) -> list[tuple[str, str, str, str, bytes]]:
    """Every span with its resource and scope, in order.

    Tuples of (service, resource schema, scope, scope schema, span bytes).
    """
    out: list[tuple[str, str, str, str, bytes]] = []
    for b in batches:
        for rs in b.request.resource_spans:
            service = rs.resource.attributes[0].value.string_value
            for ss in rs.scope_spans:
                where = (service, rs.schema_url, ss.scope.name, ss.schema_url)
                out.extend((*where, span.SerializeToString()) for span in ss.spans)
    return out


class RecordingConsumer:
    """Records what it gets. Scripted: refuse retriably ``refuse_times`` times, or refuse permanently
    while ``permanent`` is set; ``gate`` (when cleared) holds every call until set."""

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def __init__(self, *, refuse_times: int = 0, retry_after: float | None = 0.01, permanent: bool = False,
                 delay: float = 0.0) -> None:
        self.batches: list[SpanBatch] = []
        self.calls = 0
        self.refusals = 0
        self.refuse_times = refuse_times
        self.retry_after = retry_after
        self.permanent = permanent
        self.delay = delay
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.max_in_flight = 0

    async def consume_traces(self, batch: SpanBatch) -> None:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.permanent:
                raise PermanentError("scripted permanent refusal")
            if self.refuse_times > 0:
                self.refuse_times -= 1
                self.refusals += 1
                raise ConsumerError(
                    "scripted retriable refusal", retriable=True, retry_after=self.retry_after
                )
            self.batches.append(batch)
        finally:
            self.in_flight -= 1

    @property
    def span_count(self) -> int:
        return sum(b.span_count for b in self.batches)


async def wait_for(cond: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
