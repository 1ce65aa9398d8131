"""Fuzz targets: each takes bytes and raises only when a contract is broken (see ``__init__``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from collector import otlpjson
from collector.config import ConfigError
from collector.config.service import load_config
from collector.model import Trace, make_trace
from collector.registry import Registry
from collector.validate import remove_invalid_spans
from collector.wire import InvalidSpanIds, WireError, certain_span_count, load_compiled, split_by_trace
from pipelines.root_cause import find_failures, find_slow, latency_cause
from pipelines.root_cause.model import Failure

Target = Callable[[bytes], None]


def wire(data: bytes) -> None:
    """The receivers' path for protobuf bytes: the compiled check, protobuf, the split."""
    load_compiled()
    try:
        request: ExportTraceServiceRequest | None = ExportTraceServiceRequest.FromString(data)
    except DecodeError:
        request = None
    certain = certain_span_count(data)
    if certain is not None:
        assert request is not None, "the compiled check is certain of bytes protobuf refuses"
        assert certain == sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    try:
        chunks = split_by_trace(data)
    except InvalidSpanIds:
        if request is not None:
            assert remove_invalid_spans(request).rejected, "InvalidSpanIds for ids protobuf finds valid"
        return
    except WireError:
        return
    if request is None or certain is None:
        return  # the receivers hand only bytes the compiled check is certain of to the split as they are
    assert not remove_invalid_spans(ExportTraceServiceRequest.FromString(data)).rejected
    spans = sorted(s.SerializeToString(deterministic=True)
                   for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
    split = sorted(s.SerializeToString(deterministic=True) for c in chunks for ts in c.by_trace.values()
                   for s in ScopeSpans.FromString(b"".join(ts.entries)).spans)
    assert split == spans, "the split hands on other spans than protobuf decodes"


def otlp_json(data: bytes) -> None:
    try:
        request = otlpjson.decode_request(data)
    except ValueError as e:
        assert str(e)
        return
    assert otlpjson.decode_request(otlpjson.encode_request(request)) == request


_REGISTRY: Registry | None = None


def config(data: bytes) -> None:
    """A config file with these bytes: a config or a ConfigError with messages."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry.default()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(data)
        try:
            load_config([str(path)], _REGISTRY, {})
        except ConfigError as e:
            assert e.issues and all(i.message for i in e.issues)


def _trace(data: bytes) -> Trace:
    """A trace of up to 40 spans from 5 bytes each: id, parent (0: none, above 200: missing), status and
    kind, start, end. Small id values make duplicates, cycles and self parents common."""
    groups: dict[int, list[Span]] = {}
    tid = bytes(range(1, 17))
    for k in range(0, min(len(data), 200) - 4, 5):
        sid, parent, flags, start, end = data[k:k + 5]
        s = Span(trace_id=tid, span_id=(sid % 16).to_bytes(8, "big") if sid % 16 else b"", name=f"op{sid % 16}",
                 kind=(flags >> 2) % 6,  # type: ignore[arg-type]
                 start_time_unix_nano=start * 1000, end_time_unix_nano=end * 1000)
        if parent:
            s.parent_span_id = (parent % 16 if parent <= 200 else 99).to_bytes(8, "big")
        if flags & 3:
            s.status.code = flags & 3 if flags & 3 < 3 else 2  # type: ignore[assignment]
        if flags & 0x80:
            s.attributes.add(key="error").value.bool_value = True
        groups.setdefault(flags >> 6 & 1, []).append(s)
    return make_trace([(Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=f"s{g}"))]),
                        spans) for g, spans in groups.items()])


def _same(a: list[Failure], b: list[Failure]) -> None:
    assert a == b, "the wire index and the decoded index disagree"


def root_cause(data: bytes) -> None:
    """The error walk and the latency walk end, and their two indexes agree."""
    if len(data) < 5:
        return
    decoded = _trace(data)
    decoded.groups()
    _same(find_failures(_trace(data), max_path=5).failures,
          find_failures(decoded, max_path=5, from_wire=False).failures)
    _same(find_slow(_trace(data), (), 1000, max_path=5).failures, find_slow(decoded, (), 1000, max_path=5).failures)
    for sid in {data[k] % 16 for k in range(0, len(data) - 4, 5)}:
        span_id = sid.to_bytes(8, "big")
        assert latency_cause(_trace(data), span_id) == latency_cause(decoded, span_id)


TARGETS: dict[str, Target] = {"wire": wire, "otlp_json": otlp_json, "config": config, "root_cause": root_cause}
