"""OTLP/JSON codec: hex ids, integer enums, int64 as strings or numbers, both key spellings."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bench.shapes import SHAPES, build_request
from collector import otlpjson
from collector.otlpjson import (
    decode_request,
    decode_response,
    encode_message,
    encode_request,
    encode_response,
    reference_request_bytes,
    request_bytes,
)
from tests.collector.wire.support import random_request

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("0102030405060708")


def sample_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.21.0")
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="shop")))
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    span = ss.spans.add(trace_id=TRACE_ID, span_id=SPAN_ID, parent_span_id=PARENT_ID, name="GET /cart",
                        kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1_700_000_000_000_000_000,
                        end_time_unix_nano=1_700_000_000_500_000_000, flags=0x301)
    span.attributes.append(KeyValue(key="http.status_code", value=AnyValue(int_value=500)))
    span.attributes.append(KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\xff")))
    span.status.code = Status.STATUS_CODE_ERROR
    span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(8)))
    ss.spans.add(trace_id=TRACE_ID, span_id=PARENT_ID, name="root")
    return req


def test_encode_uses_hex_ids_int_enums_and_is_compact() -> None:
    data = encode_request(sample_request())
    assert not data.endswith(b"\n") and b" " not in data.replace(b"GET /cart", b"")
    doc = json.loads(data)
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == TRACE_ID.hex()
    assert span["spanId"] == SPAN_ID.hex()
    assert span["parentSpanId"] == PARENT_ID.hex()
    assert span["kind"] == 2
    assert span["status"]["code"] == 2
    assert span["startTimeUnixNano"] == "1700000000000000000"
    assert span["links"][0] == {"traceId": bytes(range(16)).hex(), "spanId": bytes(range(8)).hex()}
    root = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert "parentSpanId" not in root


def test_round_trip() -> None:
    req = sample_request()
    assert decode_request(encode_request(req)) == req


def test_decode_accepts_snake_case_enum_names_numbers_and_ignores_unknown_fields() -> None:
    doc = {
        "resource_spans": [{
            "futureField": True,
            "scope_spans": [{
                "spans": [{
                    "trace_id": TRACE_ID.hex().upper(), "span_id": SPAN_ID.hex(), "parent_span_id": "",
                    "name": "x", "kind": "SPAN_KIND_CLIENT", "start_time_unix_nano": 1700000000000000000,
                    "endTimeUnixNano": "1700000000000000001", "droppedAttributesCount": 3,
                    "status": {"code": "STATUS_CODE_OK"}, "somethingNew": {"a": [1]},
                    "links": [{"trace_id": TRACE_ID.hex(), "span_id": PARENT_ID.hex()}],
                }],
            }],
        }],
    }
    req = decode_request(json.dumps(doc).encode())
    span = req.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == TRACE_ID and span.span_id == SPAN_ID and span.parent_span_id == b""
    assert span.kind == Span.SPAN_KIND_CLIENT and span.status.code == Status.STATUS_CODE_OK
    assert span.start_time_unix_nano == 1700000000000000000 and span.end_time_unix_nano == 1700000000000000001
    assert span.dropped_attributes_count == 3
    assert span.links[0].span_id == PARENT_ID


@pytest.mark.parametrize(("doc", "message"), [
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{},{},{"traceId":"xyz"}]}]}]}',
     "resourceSpans[0].scopeSpans[0].spans[2].traceId: invalid hex 'xyz'"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"abc"}]}]}]}',
     "resourceSpans[0].scopeSpans[0].spans[0].spanId: invalid hex 'abc'"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"00 01"}]}]}]}', "spanId: invalid hex '00 01'"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"links":[{"spanId":7}]}]}]}]}',
     "resourceSpans[0].scopeSpans[0].spans[0].links[0].spanId: expected a hex string, got int"),
    (b'{"resourceSpans":{}}', "resourceSpans: expected an array, got an object"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}',
     "resourceSpans.scopeSpans.spans.startTimeUnixNano:"),
    (b"[]", "expected a JSON object"),
    (b"{", "invalid JSON"),
    (b"\xff\xfe{\x00}\x00", "not UTF-8"),
])
def test_decode_errors_say_what_and_where(doc: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        decode_request(doc)
    assert message in str(info.value)


def test_empty_ids_allowed() -> None:
    doc = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"","parentSpanId":""}]}]}]}'
    req = decode_request(doc)
    assert req.resource_spans[0].scope_spans[0].spans[0].trace_id == b""


def test_responses_and_status() -> None:
    assert encode_response(ExportTraceServiceResponse()) == b"{}"
    resp = ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = 2
    resp.partial_success.error_message = "bad ids"
    data = encode_response(resp)
    assert json.loads(data) == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}}
    assert decode_response(data) == resp
    assert decode_response(b'{"partialSuccess":{"rejectedSpans":2}}').partial_success.rejected_spans == 2
    from google.rpc import status_pb2

    assert json.loads(encode_message(status_pb2.Status(code=14, message="busy"))) == {"code": 14, "message": "busy"}


@pytest.mark.parametrize("doc", [
    b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
    # Shallow enough for json, too deep for the walk over ids and for protobuf's parser.
    b'{"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": '
    + b'{"kvlistValue": {"values": [{"key": "k", "value": ' * 300 + b'{"intValue": 1}' + b"}]}}" * 300
    + b"}]}}]}",
])
def test_deeply_nested_json_is_a_value_error(doc: bytes) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_request(doc)


# -- request_bytes: OTLP/JSON straight to protobuf bytes, the same as json_format's ----------------------


def _same_as_json_format(doc: bytes | str) -> bytes:
    data = request_bytes(doc)
    assert data == reference_request_bytes(doc)
    return data


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_request_bytes_equal_json_formats_on_every_benchmark_shape(shape: str) -> None:
    req = build_request(SHAPES[shape], 0, seed=1)
    assert _same_as_json_format(encode_request(req)) == req.SerializeToString()


@pytest.mark.parametrize("seed", range(3))
def test_request_bytes_equal_json_formats_on_random_requests(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(4):
        req = ExportTraceServiceRequest.FromString(random_request(rnd, trace_state=0.1))
        for rs in req.resource_spans:  # values of every kind, empty ones too (a oneof writes them anyway)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    s.attributes.extend(KeyValue(key=k, value=v) for k, v in (
                        ("d", AnyValue(double_value=rnd.choice([0.0, -0.0, 1.5, -2e300]))),
                        ("i", AnyValue(int_value=rnd.choice([0, -1, 2**63 - 1, -(2**63)]))),
                        ("s", AnyValue(string_value=rnd.choice(["", "é", "x" * 200]))),
                        ("b", AnyValue(bool_value=rnd.random() < 0.5)),
                        ("e", AnyValue()),
                        ("a", AnyValue(array_value={"values": [AnyValue(int_value=1), AnyValue()]})),
                        ("kv", AnyValue(kvlist_value={"values": [KeyValue(key="x")]})),
                    ))
                    s.events.add(name="e", time_unix_nano=rnd.randint(0, 2**64 - 1), dropped_attributes_count=2)
                    if rnd.random() < 0.3:
                        s.status.SetInParent()
        assert _same_as_json_format(encode_request(req)) == req.SerializeToString()


@pytest.mark.parametrize("doc", [
    # both spellings, enum names and numbers, numbers as strings, unknown fields, nulls, fields in any order,
    # an empty message (written), empty defaults (left out), a oneof member with its default (written)
    {"resource_spans": [{"futureField": True, "scopeSpans": [{"scope": {}, "spans": [
        {"name": "x", "flags": 769, "traceId": TRACE_ID.hex().upper(), "span_id": SPAN_ID.hex(),
         "kind": "SPAN_KIND_CLIENT", "start_time_unix_nano": 1700000000000000000, "endTimeUnixNano": "17",
         "parentSpanId": "", "status": {"code": 2, "message": "m"}, "droppedAttributesCount": "0",
         "attributes": [{"key": "error", "value": {"boolValue": False}}, {"key": "n", "value": {"intValue": "-5"}},
                        {"value": {"stringValue": ""}, "key": "k"}, {"key": "z", "value": None},
                        {"key": "o", "value": {"stringValue": "a", "intValue": None}}],
         "links": None, "events": [{"timeUnixNano": "1", "name": "exception"}], "somethingNew": {"a": [1]}},
    ]}]}]},
    {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}],
                                     "entityRefs": [{"type": "service", "idKeys": ["service.name", ""]}]},
                        "scopeSpans": [], "schemaUrl": ""}]},
    {"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": 9, "status": {"code": "STATUS_CODE_UNSET"}}]}]}]},
    {},
])
def test_request_bytes_equal_json_formats_on_unusual_documents(doc: dict[str, object]) -> None:
    _same_as_json_format(json.dumps(doc))


@pytest.mark.parametrize("doc", [
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{},{},{"traceId":"xyz"}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"00 01"}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-1}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NONSENSE"}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"boolValue":1}}]}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"intValue":true}}]}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":'
    b'{"intValue":1,"stringValue":"x"}}]}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[null]}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":{}}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\\ud800"}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","name":"b","traceId":"00","trace_id":"01"}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"droppedAttributesCount":4294967296}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"[ext]":1}]}]}]}',
])
def test_request_bytes_errors_are_json_formats(doc: bytes) -> None:
    """What the walk does not take goes to json_format: the same error, or the same bytes."""
    try:
        expected: bytes | str = reference_request_bytes(doc)
    except ValueError as e:
        expected = str(e)
    try:
        got: bytes | str = request_bytes(doc)
    except ValueError as e:
        got = str(e)
    assert got == expected
    assert isinstance(expected, bytes) or "resourceSpans" in expected or "surrogate" in expected.lower() \
        or "ext" in expected


def test_request_bytes_attribute_memo_keeps_types_apart() -> None:
    """The memo of attributes seen before never answers for a value of another type (1 and true are
    one dict key to Python)."""
    ok = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"intValue":1}}]}]}]}]}'
    _same_as_json_format(ok)
    with pytest.raises(ValueError, match="intValue"):
        request_bytes(ok.replace(b"1}", b"true}"))
    boolean = ok.replace(b"intValue", b"boolValue").replace(b"1}", b"true}")
    _same_as_json_format(boolean)
    with pytest.raises(ValueError, match="boolValue"):
        request_bytes(boolean.replace(b"true}", b"1}"))


# -- where msgspec (the typed way) and json.loads differ: json.loads' answer stands ------------------------

_SPAN = b'{"resourceSpans":[{"scopeSpans":[{"spans":[%s]}]}]}'
_ATTR = _SPAN % b'{"attributes":[{"key":"a","value":{%s}}]}'


def _outcome(fn: Callable[[bytes | str], bytes], doc: bytes | str) -> bytes | str:
    try:
        return fn(doc)
    except ValueError as e:
        return f"ValueError: {e}"


def _reference(doc: bytes | str) -> bytes:
    """json.loads' answer (as request_bytes words a JSON error), then json_format's."""
    try:
        json.loads(doc.decode("utf-8-sig") if isinstance(doc, bytes) else doc)
    except UnicodeDecodeError as e:
        raise ValueError(f"request body is not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    return reference_request_bytes(doc)


@pytest.mark.parametrize("doc", [
    _ATTR % b'"doubleValue":NaN', _ATTR % b'"doubleValue":Infinity', _ATTR % b'"doubleValue":-Infinity',
    _ATTR % b'"doubleValue":1e400', _ATTR % b'"doubleValue":-1e400', _ATTR % b'"doubleValue":1e-400',
    _ATTR % b'"doubleValue":111111111111111111111111111111',  # an integer beyond 64 bits as a double
    _ATTR % b'"intValue":18446744073709551616', _ATTR % b'"intValue":-9223372036854775809',
    _ATTR % b'"intValue":9223372036854775807', _ATTR % b'"intValue":"9223372036854775808"',
    _SPAN % b'{"startTimeUnixNano":18446744073709551615}', _SPAN % b'{"startTimeUnixNano":18446744073709551616}',
    _SPAN % b'{"name":"a","name":"b"}', _SPAN % b'{"name":"a","name":null}',  # duplicate keys: the last wins
    _SPAN % b'{"status":{"code":2},"status":{"message":"m"}}',
    _ATTR % b'"stringValue":"x","stringValue":"y"',
    _SPAN % b'{"name":"\\ud800"}', _SPAN % b'{"name":"\\udc00\\ud800"}', _ATTR % b'"stringValue":"\\ud800"',
    _SPAN % b'{"name":"\\ud83d\\ude00 \xc3\xa9"}',  # a surrogate pair, UTF-8
    b"\xef\xbb\xbf" + _SPAN % b'{"name":"bom"}',  # a BOM before bytes
    _SPAN % b'{"name":"a"}' + b"  \n", _SPAN % b'{"name":"a"}' + b"\x0c", b"",
    _SPAN % b'{"kind":1.0}', _SPAN % b'{"kind":true}', _SPAN % b'{"flags":-1}',
    _SPAN % b'{"trace_id":"00","name":"snake"}', _SPAN % b'{"traceId":null,"trace_id":"0102"}',
    _SPAN % b'{"futureField":{"a":[1]},"name":"unknown key"}', _SPAN % b'{"[ext]":1}',
    _SPAN % b'{"attributes":[null]}', _SPAN % b'{"attributes":[{"key":"a","value":null}]}',
    _SPAN % b'{"events":null,"links":[],"status":null}', _SPAN % b'{"status":{}}',
    b'{"resourceSpans":[{"resource":{"attributes":[],"droppedAttributesCount":3},"scopeSpans":null}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"scope":{"name":"s","version":"1"},"spans":[null]}]}]}',
])
@pytest.mark.parametrize("as_text", [False, True])
def test_request_bytes_keep_jsons_answers_where_msgspec_differs(doc: bytes, as_text: bool) -> None:
    """Bytes or bytes-as-str: the same bytes as json_format, or the same error."""
    body: bytes | str = doc
    if as_text:
        try:
            body = doc.decode()
        except UnicodeDecodeError:
            pytest.skip("not UTF-8")
    assert _outcome(request_bytes, body) == _outcome(_reference, body)


def test_request_bytes_text_with_a_lone_surrogate_or_a_bom() -> None:
    """A str body may hold what no UTF-8 bytes can (a lone surrogate); a str BOM is an error, as for json."""
    for body in ['{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\ud800"}]}]}]}',
                 '\ufeff{"resourceSpans":[]}']:
        assert _outcome(request_bytes, body) == _outcome(_reference, body)
        assert str(_outcome(request_bytes, body)).startswith("ValueError")


def test_canonical_requests_take_the_typed_way() -> None:
    """What SDKs send (lowerCamelCase, known keys) is decoded by msgspec into structs, not walked as dicts."""
    assert otlpjson._typed_decode is not None
    for name in sorted(SHAPES):
        req = build_request(SHAPES[name], 0, seed=2)
        assert otlpjson._typed_request(otlpjson._typed_decode(encode_request(req))) == req.SerializeToString()


def test_request_bytes_same_whatever_the_spacing_and_key_order() -> None:
    """The raw-text memo of attributes, status, resource and scope: another spacing or key order of the same
    values is another text and gives the same bytes."""
    req = build_request(SHAPES["events_links"], 0, seed=3)
    want = req.SerializeToString()
    doc = json.loads(encode_request(req))
    for text in (json.dumps(doc), json.dumps(doc, indent=1), json.dumps(doc, sort_keys=True),
                 json.dumps(doc, separators=(",", ":"), sort_keys=True), encode_request(req).decode()):
        assert request_bytes(text) == want
        assert request_bytes(text.encode()) == want


def test_request_bytes_more_distinct_attributes_than_the_memos_hold() -> None:
    """Past MEMO_SIZE entries a memo starts again: every attribute still encodes as json_format's."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(otlpjson.MEMO_SIZE // 4 + 10):
        span = spans.add(trace_id=TRACE_ID, span_id=i.to_bytes(8, "big"), name=f"s{i % 7}")
        for k in range(5):
            span.attributes.append(KeyValue(key=f"k{k}", value=AnyValue(string_value=f"v{i}.{k}")))
        span.status.message = f"m{i}"
    body = encode_request(req)
    assert request_bytes(body) == req.SerializeToString()
    assert request_bytes(body) == req.SerializeToString()  # (again, with the memos as the first left them)
    assert _same_as_json_format(body) == req.SerializeToString()


@pytest.mark.parametrize("shape", ["baseline", "events_links", "json"])
def test_request_bytes_without_msgspec(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without msgspec (not importable), json.loads and the dict walk give the same bytes and errors."""
    monkeypatch.setattr(otlpjson, "_typed_decode", None)
    req = build_request(SHAPES[shape], 0, seed=4)
    assert _same_as_json_format(encode_request(req)) == req.SerializeToString()
    bad = _SPAN % b'{"startTimeUnixNano":"soon"}'
    assert _outcome(request_bytes, bad) == _outcome(_reference, bad)
