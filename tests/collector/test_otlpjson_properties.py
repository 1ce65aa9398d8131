"""OTLP/JSON decoding under arbitrary input (hypothesis): whatever the bytes, decode_request returns a request
or raises ValueError with a message; a request it encodes decodes back to itself."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.otlpjson import decode_request, decode_response, encode_request, reference_request_bytes, request_bytes

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
# The lowerCamelCase keys alone (what SDKs write: the typed way's documents, when the values fit).
CAMEL_SPAN_KEYS = ["traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano",
                   "attributes", "status", "links", "events", "flags", "traceState", "droppedAttributesCount"]


def otlp_documents(span_keys: list[str], scope_spans_keys: list[str], resource_keys: list[str],
                   request_keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    spans = st.dictionaries(
        st.sampled_from(span_keys), st.one_of(field_values, st.lists(ATTRIBUTE, max_size=2),
                                              st.lists(st.dictionaries(st.sampled_from(span_keys), field_values,
                                                                       max_size=3), max_size=2)),
        max_size=8)
    scope_spans = st.dictionaries(st.sampled_from(scope_spans_keys),
                                  st.one_of(st.lists(spans, max_size=3), field_values), max_size=3)
    resource_spans = st.dictionaries(st.sampled_from(resource_keys),
                                     st.one_of(st.lists(scope_spans, max_size=3), field_values), max_size=3)
    return st.dictionaries(st.sampled_from(request_keys),
                           st.one_of(st.lists(resource_spans, max_size=3), field_values), max_size=2)


# Documents shaped like an ExportTraceServiceRequest, with wrong types and values anywhere in them.
otlp_like = otlp_documents(SPAN_KEYS, ["spans", "scope", "schemaUrl", "x"],
                           ["scopeSpans", "scope_spans", "resource", "schemaUrl"], ["resourceSpans", "resource_spans",
                                                                                     "other"])
camel_case = otlp_documents(CAMEL_SPAN_KEYS, ["spans", "scope", "schemaUrl"], ["scopeSpans", "resource", "schemaUrl"],
                            ["resourceSpans"])


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


def outcome(data: bytes | str, reference: bool) -> bytes | str:
    """request_bytes' answer, or the answer of json.loads then json_format (errors as text)."""
    try:
        if not reference:
            return request_bytes(data)
        try:
            json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data)
        except json.JSONDecodeError as e:
            return f"invalid JSON: {e}"
        return reference_request_bytes(data)
    except ValueError as e:
        return str(e)


@FAST
@given(st.one_of(otlp_like, camel_case), st.sampled_from([None, 1]), st.booleans())
def test_request_bytes_equal_json_formats_on_otlp_shaped_documents(doc: dict[str, Any], indent: int | None,
                                                                   text: bool) -> None:
    """Whichever way request_bytes takes (msgspec's typed decoding, the dict walk, json_format), the same bytes
    as json_format, or the same error."""
    data: bytes | str = json.dumps(doc, indent=indent)
    if not text:
        data = data.encode()
    assert outcome(data, reference=False) == outcome(data, reference=True)


def same_document(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (True is not 1, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_document(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_document(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)
    return bool(a == b)


json_texts = st.one_of(
    json_values.map(json.dumps),
    st.recursive(st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                 max_leaves=10).map(lambda v: json.dumps(v, ensure_ascii=False)),
    # numbers, escapes, duplicate keys and literals written by hand
    st.lists(st.sampled_from(['{"a":', '"b":', "1", "-0", "-0.0", "1e400", "1E-400", "18446744073709551616",
                              "-9223372036854775809", "1.5", "NaN", "Infinity", '"\\ud800"', '"\\udc00"',
                              '"\\ud83d\\ude00"', '"\\u00e9"', '"\u00e9"', '"\ud800"', "[", "]", "{", "}", ",",
                              ":", " ", "\ufeff", "true", "null", '"a"', "01", "\t", "\x01", "\x0c"]),
             max_size=12).map("".join),
)


@FAST
@given(json_texts, st.booleans())
def test_msgspec_gives_jsons_document_or_refuses(text: str, as_bytes: bool) -> None:
    """The premise of the typed way: whenever msgspec decodes a text, json.loads gives the same document (else
    json.loads decides)."""
    data: bytes | str = text
    if as_bytes:
        try:
            data = text.encode()
        except UnicodeEncodeError:
            return
    try:
        got = msgspec.json.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return
    assert same_document(got, json.loads(data)), (data, got)


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
    assert request_bytes(encode_request(request)) == request.SerializeToString()
