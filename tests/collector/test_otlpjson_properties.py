"""OTLP/JSON decoding under arbitrary input (hypothesis): whatever the bytes, decode_request returns a request
or raises ValueError with a message; a request it encodes decodes back to itself."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.otlpjson import decode_request, decode_response, encode_request

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any JSON value: the shapes a client can send, nested a few levels.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)

# Values that are the right kind for some OTLP field and wrong for most: ids in hex and not, enums by name.
field_values = st.one_of(
    json_values,
    st.binary(max_size=17).map(bytes.hex),
    st.sampled_from(["", "zz", "0", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR", "NaN", "-1", "18446744073709551616"]),
    st.integers(-1, 2**64),
)
SPAN_KEYS = ["traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id", "name", "kind",
             "startTimeUnixNano", "end_time_unix_nano", "attributes", "status", "links", "events", "flags",
             "traceState", "droppedAttributesCount"]
ATTRIBUTE = st.fixed_dictionaries({"key": st.text(max_size=8)}, optional={"value": st.dictionaries(
    st.sampled_from(["stringValue", "intValue", "boolValue", "doubleValue", "bytesValue", "arrayValue",
                     "kvlistValue", "string_value"]), field_values, max_size=2)})
spans = st.dictionaries(
    st.sampled_from(SPAN_KEYS), st.one_of(field_values, st.lists(ATTRIBUTE, max_size=2),
                                           st.lists(st.dictionaries(st.sampled_from(SPAN_KEYS), field_values,
                                                                    max_size=3), max_size=2)),
    max_size=8)
scope_spans = st.dictionaries(st.sampled_from(["spans", "scope", "schemaUrl", "x"]),
                              st.one_of(st.lists(spans, max_size=3), field_values), max_size=3)
resource_spans = st.dictionaries(st.sampled_from(["scopeSpans", "scope_spans", "resource", "schemaUrl"]),
                                 st.one_of(st.lists(scope_spans, max_size=3), field_values), max_size=3)
# Documents shaped like an ExportTraceServiceRequest, with wrong types and values anywhere in them.
otlp_like = st.dictionaries(st.sampled_from(["resourceSpans", "resource_spans", "other"]),
                            st.one_of(st.lists(resource_spans, max_size=3), field_values), max_size=2)


def decodes_or_refuses(data: bytes | str) -> ExportTraceServiceRequest | None:
    """The property: a request, or ValueError with a message (never another exception)."""
    try:
        return decode_request(data)
    except ValueError as e:
        assert str(e), "the refusal says what is wrong"
        return None


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@FAST
@given(json_values)
def test_arbitrary_json(doc: Any) -> None:
    request = decodes_or_refuses(json.dumps(doc))
    if not isinstance(doc, dict):
        assert request is None


@FAST
@given(otlp_like)
def test_otlp_shaped_documents_with_wrong_values(doc: dict[str, Any]) -> None:
    request = decodes_or_refuses(json.dumps(doc).encode())
    if request is not None:  # what was accepted encodes and decodes back to itself
        assert decode_request(encode_request(request)) == request


@FAST
@given(st.binary(max_size=120))
def test_arbitrary_bytes_as_a_response(data: bytes) -> None:
    try:
        decode_response(data)
    except ValueError as e:
        assert str(e)


any_values = st.recursive(
    st.builds(AnyValue, string_value=st.text(max_size=10)) | st.builds(AnyValue, int_value=st.integers(-(2**63),
                                                                                                    2**63 - 1))
    | st.builds(AnyValue, bool_value=st.booleans()) | st.builds(AnyValue, bytes_value=st.binary(max_size=10))
    | st.builds(AnyValue, double_value=st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.lists(inner, max_size=3).map(lambda vs: AnyValue(array_value={"values": vs})),
    max_leaves=6,
)


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = req.resource_spans.add(schema_url=draw(st.text(max_size=5)))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=5))
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add(
                    trace_id=draw(st.binary(min_size=16, max_size=16)), span_id=draw(st.binary(min_size=8, max_size=8)),
                    parent_span_id=draw(st.sampled_from([b"", b"\x01" * 8])), name=draw(st.text(max_size=10)),
                    kind=draw(st.integers(0, 5)), start_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
                    end_time_unix_nano=draw(st.integers(0, 2**64 - 1)), flags=draw(st.integers(0, 2**32 - 1)),
                )
                for key, value in draw(st.lists(st.tuples(st.text(max_size=5), any_values), max_size=3)):
                    span.attributes.append(KeyValue(key=key, value=value))
                span.status.code = draw(st.integers(0, 2))
                for _ in range(draw(st.integers(0, 1))):
                    span.links.add(trace_id=draw(st.binary(min_size=16, max_size=16)), span_id=b"\x02" * 8)
    return req


@FAST
@given(requests())
def test_any_request_round_trips(request: ExportTraceServiceRequest) -> None:
    assert decode_request(encode_request(request)) == request
