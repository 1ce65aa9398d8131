"""The reference payload (docs/performance.md): OTLP requests of 500 spans with 8 attributes each (~275 bytes per
span on the wire), 50 traces of 10 spans per request, with fresh trace ids for every request. A trace's
root span is ``GET /shop``, the others ``GET /cart`` (names of one length).

Requests are serialized once; fresh trace and span ids are patched into the bytes at known offsets,
so a load generator can produce millions of spans per second without protobuf work.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

SPANS_PER_REQUEST = 500
SPANS_PER_TRACE = 10
SERVICES = ("frontend", "checkout", "cart", "payment", "inventory")


def _template(seed: int, error_every: int = 10, slow_every: int = 7) -> tuple[bytearray, list[tuple[int, int]]]:
    """One request and (offset, trace index) of every trace id in it (spans of a trace share its id)."""
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    per_service = SPANS_PER_REQUEST // len(SERVICES)
    base = 1_700_000_000_000_000_000
    marker = [bytes([0xAB, t]) + b"\x00" * 14 for t in range(SPANS_PER_REQUEST // SPANS_PER_TRACE)]
    for si, service in enumerate(SERVICES):
        rs = req.resource_spans.add()
        for k, v in (("service.name", service), ("service.version", "1.4.2"), ("host.name", f"{service}-7d9f")):
            rs.resource.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
        ss = rs.scope_spans.add()
        ss.scope.name = "flask"
        for j in range(per_service):
            t = (si * per_service + j) // SPANS_PER_TRACE
            depth = (si * per_service + j) % SPANS_PER_TRACE
            s: Span = ss.spans.add(
                trace_id=marker[t], span_id=rnd.randbytes(8),
                parent_span_id=b"" if depth == 0 else rnd.randbytes(8),
                name="GET /shop" if depth == 0 else "GET /cart", kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=base + depth * 1000,
                end_time_unix_nano=base + (600_000_000 if t % slow_every == 0 else 20_000_000),
            )
            for k, v in (("http.request.method", "GET"), ("http.route", "/cart"),
                         ("url.scheme", "https"), ("server.address", "shop"),
                         ("user_agent.original", "curl/8"), ("network.protocol.version", "1.1")):
                s.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
            s.attributes.append(KeyValue(key="http.response.status_code", value=AnyValue(int_value=200)))
            s.attributes.append(KeyValue(key="server.port", value=AnyValue(int_value=443)))
            if t % error_every == 0 and depth == SPANS_PER_TRACE - 1:
                s.status.code = Status.STATUS_CODE_ERROR
    data = bytearray(req.SerializeToString())
    offsets = []
    for t, m in enumerate(marker):
        start = 0
        while True:
            i = data.find(m, start)
            if i < 0:
                break
            offsets.append((i, t))
            start = i + 16
    assert len(offsets) == SPANS_PER_REQUEST, len(offsets)
    return data, offsets


class ReferenceLoad:
    """Yields serialized reference requests with fresh trace ids."""

    def __init__(self, seed: int = 1, templates: int = 8) -> None:
        self._templates = [_template(seed + i) for i in range(templates)]
        self._n = 0

    def requests(self, count: int) -> Iterator[bytes]:
        for _ in range(count):
            data, offsets = self._templates[self._n % len(self._templates)]
            self._n += 1
            ids = [os.urandom(16) for _ in range(SPANS_PER_REQUEST // SPANS_PER_TRACE)]
            for off, t in offsets:
                data[off:off + 16] = ids[t]
            yield bytes(data)

    @property
    def bytes_per_span(self) -> float:
        data, _ = self._templates[0]
        return len(data) / SPANS_PER_REQUEST
