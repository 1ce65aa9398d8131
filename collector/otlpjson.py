"""OTLP/JSON codec for traces (the OTLP/HTTP ``application/json`` encoding).

OTLP JSON is the protobuf JSON mapping with a few differences, handled here:

* ``traceId``, ``spanId``, ``parentSpanId`` (and the ids of links) are hex strings, not base64;
* enums are written as integers (names are accepted when parsing);
* keys are lowerCamelCase (the proto field names in snake_case are accepted when parsing);
* 64-bit integers may be strings or numbers; unknown fields are ignored.

Requests are decoded straight to protobuf wire bytes (:func:`request_bytes`), the same bytes as
``json_format.Parse`` then ``SerializeToString``, by the first of three ways that takes the document:

1. **Canonical OTLP/JSON** (lowerCamelCase keys, no unknown key, what SDKs send): msgspec decodes it into
   structs made from the descriptors (the request, ResourceSpans, ScopeSpans, Span), checking the scalar
   types in C, and keeps attributes, statuses, resources and scopes as their raw JSON text; an attribute (or
   status, resource, scope) whose text was seen before is one lookup in a bounded memo.
2. **Any other document**: a dict (msgspec's, else ``json.loads``') walked by a table built from the protobuf
   descriptors that writes each field as protobuf serializes it (fields in number order, default scalars left
   out, oneof members and messages always written), one plan per order of an object's keys, with the
   ``KeyValue`` of an attribute seen before taken from a bounded memo.
3. What neither takes as certainly valid (a number written as a float or with an exponent, a string id in
   both spellings, two members of a oneof, an unpaired surrogate, a bool where a number belongs...) is
   parsed by ``json_format``, which accepts it or raises the error, so errors read the same either way.

msgspec gives the same document as ``json.loads`` whenever it gives one; what it refuses and ``json.loads``
reads (NaN and Infinity, numbers that overflow to infinity, lone surrogates, a BOM before bytes, nesting
past its limit) is decoded by ``json.loads``, so the answer, and the error, are ``json``'s and
``json_format``'s. Without msgspec (it is a dependency) ways 2 and 3 run alone on ``json.loads``.
Encoding (:func:`encode_request`) is not a hot path and uses ``json_format``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

__all__ = ["decode_request", "decode_response", "encode_message", "encode_request", "encode_response",
           "memo_entries", "request_bytes"]

_HEX_RE = re.compile(r"[0-9a-fA-F]*")

# (camelCase, snake_case) spellings of the id fields of a span and of a link.
_SPAN_IDS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_LINK_IDS = (("traceId", "trace_id"), ("spanId", "span_id"))
_CONTAINERS = {
    "resourceSpans": "resource_spans",
    "scopeSpans": "scope_spans",
    "spans": "spans",
    "links": "links",
}


def decode_request(data: bytes | str) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON ``ExportTraceServiceRequest``; raise ValueError saying what is wrong and where."""
    wire = request_bytes(data)
    try:
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(wire)
    except DecodeError:  # nested deeper than protobuf reads (a message built by json_format holds it)
        return _decode_doc(json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data))
    return request


def reference_request_bytes(data: bytes | str) -> bytes:
    """What :func:`request_bytes` gives, by ``json_format`` alone (slow: for tests and benchmarks)."""
    try:
        doc = json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data)
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object (ExportTraceServiceRequest), got {_json_kind(doc)}")
        out: bytes = _decode_doc(doc).SerializeToString()
        return out
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def request_bytes(data: bytes | str) -> bytes:
    """An OTLP/JSON ``ExportTraceServiceRequest`` as protobuf wire bytes (what ``decode_request(data)
    .SerializeToString()`` gives); raise ValueError saying what is wrong and where."""
    walked = False
    if _typed_decode is not None:
        try:
            return _typed_request(_typed_decode(data))
        except Exception:  # noqa: BLE001, S110 - not canonical OTLP/JSON, or not certain: the ways below decide
            pass
        try:
            doc = _any_decode(data)
        except Exception:  # noqa: BLE001 - what msgspec refuses (NaN, a BOM, a lone surrogate...): json decides
            doc = None
        if type(doc) is dict:
            walked = True
            try:
                return _message(doc, _REQUEST)
            except RecursionError:  # (as below)
                raise ValueError("JSON nested too deeply") from None
            except Exception:  # noqa: BLE001, S110 - _NotCertain, or a value the walk chokes on: json_format
                pass
    try:
        try:
            doc = json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data)
        except UnicodeDecodeError as e:
            raise ValueError(f"request body is not UTF-8: {e}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"invalid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object (ExportTraceServiceRequest), got {_json_kind(doc)}")
        if not walked:  # (msgspec gives the same document as json whenever it gives one: walked, not certain)
            try:
                return _message(doc, _REQUEST)
            except RecursionError:
                raise
            except Exception:  # noqa: BLE001, S110 - _NotCertain, or a value the walk chokes on: json_format
                pass
        data_out: bytes = _decode_doc(doc).SerializeToString()
        return data_out
    except RecursionError:  # a hostile document nested deeper than any OTLP request: a client error
        raise ValueError("JSON nested too deeply") from None


def _decode_doc(doc: dict[str, Any]) -> ExportTraceServiceRequest:
    """The request by ``json_format`` (the reference, and the errors), from the parsed document."""
    _ids_hex_to_base64(doc)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise ValueError(_parse_error_message(e)) from None
    return request


def encode_request(request: ExportTraceServiceRequest) -> bytes:
    """One compact OTLP/JSON object (no trailing newline) with hex ids and integer enums."""
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    _ids_base64_to_hex(doc)
    return _dumps(doc)


def encode_message(message: Message) -> bytes:
    """Any message without id fields (responses, ``google.rpc.Status``) as compact JSON."""
    return _dumps(json_format.MessageToDict(message, use_integers_for_enums=True))


def encode_response(response: ExportTraceServiceResponse) -> bytes:
    """An ``ExportTraceServiceResponse`` as OTLP/JSON (``{}`` when fully accepted)."""
    return encode_message(response)


def decode_response(data: bytes | str) -> ExportTraceServiceResponse:
    """Parse an OTLP/JSON ``ExportTraceServiceResponse`` (for clients and tests)."""
    try:
        doc = json.loads(data) if data else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object (ExportTraceServiceResponse), got {_json_kind(doc)}")
    response = ExportTraceServiceResponse()
    try:
        json_format.ParseDict(doc, response, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise ValueError(_parse_error_message(e)) from None
    return response


_FIELD_PREFIX_RE = re.compile(r"Failed to parse (\w+) field: ")


def _parse_error_message(error: Exception) -> str:
    """Turn json_format's nested "Failed to parse a field: Failed to parse b field: why" into "a.b: why"."""
    text = str(error)
    path: list[str] = []
    while m := _FIELD_PREFIX_RE.match(text):
        path.append(m.group(1))
        text = text[m.end():]
    text = text.rstrip(".") or "invalid value"
    return f"{'.'.join(path)}: {text}" if path else text


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__


def _children(parent: dict[str, Any], camel: str, path: str) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a repeated container, under either spelling; shape errors name the path."""
    out: list[tuple[str, dict[str, Any]]] = []
    snake = _CONTAINERS[camel]
    for key in (camel, snake) if snake != camel else (camel,):
        items = parent.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ValueError(f"{path}{key}: expected an array, got {_json_kind(items)}")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"{path}{key}[{i}]: expected an object, got {_json_kind(item)}")
            out.append((f"{path}{key}[{i}]", item))
    return out


def _ids_hex_to_base64(doc: dict[str, Any]) -> None:
    for rs_path, rs in _children(doc, "resourceSpans", ""):
        for ss_path, ss in _children(rs, "scopeSpans", rs_path + "."):
            for span_path, span in _children(ss, "spans", ss_path + "."):
                _convert_ids(span, _SPAN_IDS, span_path)
                for link_path, link in _children(span, "links", span_path + "."):
                    _convert_ids(link, _LINK_IDS, link_path)


def _convert_ids(obj: dict[str, Any], names: tuple[tuple[str, str], ...], path: str) -> None:
    for spellings in names:
        for key in spellings:
            value = obj.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"{path}.{key}: expected a hex string, got {_json_kind(value)}")
            if len(value) % 2 or not _HEX_RE.fullmatch(value):
                raise ValueError(f"{path}.{key}: invalid hex {value!r}")
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _ids_base64_to_hex(doc: dict[str, Any]) -> None:
    for rs in doc.get("resourceSpans", ()):
        for ss in rs.get("scopeSpans", ()):
            for span in ss.get("spans", ()):
                _b64_to_hex(span, ("traceId", "spanId", "parentSpanId"))
                for link in span.get("links", ()):
                    _b64_to_hex(link, ("traceId", "spanId"))


def _b64_to_hex(obj: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = obj.get(key)
        if value:  # json_format always writes valid base64 here
            obj[key] = base64.b64decode(value).hex()


# -- OTLP/JSON straight to protobuf wire bytes ------------------------------------------------------------
#
# Each field of the table has an encoder: the field's bytes (tag and value) for a JSON value, b"" for a default
# value protobuf leaves out. Any exception in the walk (_NotCertain for what it does not take, or whatever a
# conversion raises) sends the document to json_format.


class _NotCertain(Exception):
    """The walk does not take this document as certainly valid: ``json_format`` decides."""


_NOT_CERTAIN = _NotCertain()
_Encoder = Callable[[Any], bytes]

_RANGES = {  # (low, high) of each integer type
    FieldDescriptor.TYPE_INT64: (-(1 << 63), (1 << 63) - 1), FieldDescriptor.TYPE_UINT64: (0, (1 << 64) - 1),
    FieldDescriptor.TYPE_INT32: (-(1 << 31), (1 << 31) - 1), FieldDescriptor.TYPE_UINT32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_FIXED64: (0, (1 << 64) - 1), FieldDescriptor.TYPE_FIXED32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1), FieldDescriptor.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_ENUM: (-(1 << 31), (1 << 31) - 1),
}
_FIXED64 = (FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64)
_FIXED32 = (FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32)
_SINT = (FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SINT32)
# The id fields written as hex in OTLP/JSON (the json_format path converts them in spans and their links).
_HEX_FIELDS = {"opentelemetry.proto.trace.v1.Span": ("trace_id", "span_id", "parent_span_id"),
               "opentelemetry.proto.trace.v1.Span.Link": ("trace_id", "span_id")}
_KEY_VALUE = "opentelemetry.proto.common.v1.KeyValue"
# Attributes seen before -> their bytes: most attributes of a request repeat (the same method, route, status
# code on many spans). Bounded: each attribute list field (a span's, a resource's, ...) keeps at most
# MEMO_SIZE entries (cleared when full), of keys and values of at most MEMO_TEXT characters.
MEMO_SIZE = 4096
MEMO_TEXT = 64


_Field = tuple[int, str | None, _Encoder]  # field number, its oneof's name, its encoder
_Plan = tuple[tuple[str, _Encoder], ...]  # (JSON key, encoder) of an object's fields, in field number order
# Plans by the keys of an object, in their order: the objects of a request mostly have the same keys in the
# same order (every span of an SDK's request), so the field lookups, the checks for a field written in both
# spellings or two members of a oneof, and the sort into field number order are done once per key order.
# Bounded: each message type keeps at most PLAN_SIZE key orders (cleared when full).
PLAN_SIZE = 256
# Every memo and plan map of the decoder (process-wide, shared by every receiver), by what it holds: the
# bounds above apply to each map; memo_entries() counts what they hold for /metrics.
_CACHES: dict[str, list[dict[Any, Any]]] = {"attributes": [], "messages": [], "plans": []}


def memo_entries() -> dict[str, tuple[int, int]]:
    """(entries held, most entries) of the decoder's memos and plan maps, by kind: ``attributes`` (attributes
    seen before), ``messages`` (statuses, resources and scopes), ``plans`` (key orders)."""
    size = {"attributes": MEMO_SIZE, "messages": MEMO_SIZE, "plans": PLAN_SIZE}
    return {kind: (sum(len(c) for c in caches), size[kind] * len(caches)) for kind, caches in _CACHES.items()}


class _Table:
    """The fields of one message type by JSON name and by proto name, and its plans (see PLAN_SIZE)."""

    __slots__ = ("fields", "plans")

    def __init__(self) -> None:
        self.fields: dict[str, _Field] = {}
        self.plans: dict[tuple[str, ...], _Plan | None] = {}
        _CACHES["plans"].append(self.plans)


def _table(desc: Descriptor, done: dict[str, _Table]) -> _Table:
    """The table of ``desc`` (nested messages get theirs, once each)."""
    table = done.get(desc.full_name)
    if table is not None:
        return table
    table = done[desc.full_name] = _Table()
    hex_ids = _HEX_FIELDS.get(desc.full_name, ())
    for f in desc.fields:
        oneof = f.containing_oneof.name if f.containing_oneof is not None else None
        field = (f.number, oneof, _encoder(f, f.name in hex_ids, done))
        table.fields[f.json_name] = table.fields[f.name] = field
    return table


def _encoder(f: FieldDescriptor, hex_id: bool, done: dict[str, _Table]) -> _Encoder:
    """The encoder of field ``f`` (see the section comment)."""
    T = FieldDescriptor
    typ, number, presence = f.type, f.number, f.has_presence
    if typ == T.TYPE_MESSAGE:
        tag = _varint(number << 3 | 2)
        sub = _table(f.message_type, done)
        if f.message_type.full_name == _KEY_VALUE:
            return _key_values_encoder(tag, sub) if f.is_repeated else _message_encoder(tag, sub)
        return _messages_encoder(tag, sub) if f.is_repeated else _message_encoder(tag, sub)
    if f.is_repeated:  # (none in OTLP traces but strings: left to json_format, to keep this short)
        def not_certain(v: Any) -> bytes:
            raise _NOT_CERTAIN
        return not_certain if typ != T.TYPE_STRING else _repeated_strings(_varint(number << 3 | 2))
    if typ == T.TYPE_STRING or typ == T.TYPE_BYTES:
        return _length_delimited(_varint(number << 3 | 2), presence, typ == T.TYPE_STRING, hex_id)
    if typ == T.TYPE_BOOL:
        true, false = _varint(number << 3) + b"\x01", _varint(number << 3) + b"\x00" if presence else b""

        def boolean(v: Any) -> bytes:
            if type(v) is not bool:
                raise _NOT_CERTAIN
            return true if v else false
        return boolean
    if typ == T.TYPE_DOUBLE:
        tag = _varint(number << 3 | 1)

        def double(v: Any) -> bytes:
            t = type(v)
            if (t is not float and t is not int) or v != v or v in (_INF, _NINF):
                raise _NOT_CERTAIN
            v = float(v)
            return tag + _PACK_D(v) if v or presence or math.copysign(1.0, v) < 0 else b""
        return double
    low, high = _RANGES.get(typ, (0, -1))  # (a float, a group: never certain)
    enum = {v.name: v.number for v in f.enum_type.values} if typ == T.TYPE_ENUM else None
    if typ in _FIXED64:
        tag, pack = _varint(number << 3 | 1), _fixed64
    elif typ in _FIXED32:
        tag, pack = _varint(number << 3 | 5), _fixed32
    elif typ in _SINT:
        tag, pack = _varint(number << 3), _zigzag
    else:
        tag, pack = _varint(number << 3), _varint_small
    zero = tag + pack(0) if presence else b""

    def integer(v: Any) -> bytes:
        t = type(v)
        if t is str:
            if enum is not None:
                n = enum.get(v)
                if n is None:
                    raise _NOT_CERTAIN
            elif v.isascii() and (v.isdigit() or (v[:1] == "-" and v[1:].isdigit())):
                n = int(v)
            else:
                raise _NOT_CERTAIN
        elif t is int:
            n = v
        else:
            raise _NOT_CERTAIN
        if n < low or n > high:
            raise _NOT_CERTAIN
        return tag + pack(n) if n else zero
    return integer


def _message_encoder(tag: bytes, table: _Table) -> _Encoder:
    def message(v: Any) -> bytes:
        body = _message(v, table)
        return tag + _length(len(body)) + body
    return message


def _messages_encoder(tag: bytes, table: _Table) -> _Encoder:
    """A repeated message field's encoder (a document's list of dicts)."""
    def item(x: Any) -> bytes:
        return _message(x, table)

    framed = _framed_items(tag, item)

    def messages(v: Any) -> bytes:
        if type(v) is not list:
            raise _NOT_CERTAIN
        return framed(v)
    return messages


def _framed_items(tag: bytes, encode: _Encoder) -> _Encoder:
    """A repeated message field's items, each encoded by ``encode`` and framed, in one loop."""
    def messages(v: Any) -> bytes:
        out: list[bytes] = []
        append = out.append
        for x in v:
            body = encode(x)
            n = len(body)
            append(tag)
            append(_SMALL[n] if n < 0x80 else _length(n))
            append(body)
        return b"".join(out)
    return messages


def _key_values_encoder(tag: bytes, table: _Table) -> _Encoder:
    """A repeated ``KeyValue`` field's encoder (attributes): the usual ``{"key": k, "value": {"<kind>Value":
    v}}`` seen before comes from a memo (per field, see MEMO_SIZE), in one loop without a call per item."""
    memo: dict[tuple[object, ...], bytes] = {}
    _CACHES["attributes"].append(memo)
    plain = _message_encoder(tag, table)

    def key_values(v: Any) -> bytes:
        if type(v) is not list:
            raise _NOT_CERTAIN
        out: list[bytes] = []
        append = out.append
        get = memo.get
        for item in v:
            # The usual item in a few operations; anything else (not an object, other keys, a value that is
            # not an object of one member, an unhashable key or value) raises here and takes the plain way.
            # (The type is in the memo key: True == 1 and 0.0 == -0.0 to a dict, not to json_format; only
            # str, int and bool values are memoized, so a float never finds an entry.)
            try:
                if len(item) == 2:
                    key = item["key"]
                    ((kind, x),) = item["value"].items()
                    found = get((key, kind, x, type(x)))
                    if found is not None:
                        append(found)
                        continue
            except (TypeError, KeyError, AttributeError, ValueError):
                append(plain(item))
                continue
            found = plain(item)  # (raises for anything not certain: never memoized)
            if type(item) is dict and len(item) == 2:
                value = item.get("value")
                if type(value) is dict and len(value) == 1:
                    key = item.get("key")
                    for kind, x in value.items():
                        if type(x) in _MEMO_TYPES and type(key) is str and len(key) <= MEMO_TEXT and (
                                type(x) is not str or len(x) <= MEMO_TEXT):
                            if len(memo) >= MEMO_SIZE:
                                memo.clear()
                            memo[(key, kind, x, type(x))] = found
            append(found)
        return b"".join(out)
    return key_values


_MEMO_TYPES = frozenset((str, int, bool))


def _length_delimited(tag: bytes, presence: bool, text: bool, hex_id: bool) -> _Encoder:
    empty = tag + b"\x00" if presence else b""
    if text:
        def string(v: Any) -> bytes:
            if type(v) is not str:
                raise _NOT_CERTAIN
            if not v:
                return empty
            b = v.encode()  # (a lone surrogate raises: json_format decides)
            n = len(b)
            return tag + (_SMALL[n] if n < 0x80 else _length(n)) + b
        return string
    if hex_id:
        def hex_bytes(v: Any) -> bytes:
            if type(v) is not str or not v.isascii():
                raise _NOT_CERTAIN
            if not v:
                return empty
            b = bytes.fromhex(v)
            n = len(b)
            if n * 2 != len(v):  # fromhex skips whitespace, the json_format path refuses it
                raise _NOT_CERTAIN
            return tag + (_SMALL[n] if n < 0x80 else _length(n)) + b
        return hex_bytes

    def base64_bytes(v: Any) -> bytes:
        if type(v) is not str or not v.isascii():
            raise _NOT_CERTAIN
        if not v:
            return empty
        b = base64.urlsafe_b64decode(v + "=" * (4 - len(v) % 4))  # as json_format reads it
        n = len(b)
        return tag + (_SMALL[n] if n < 0x80 else _length(n)) + b
    return base64_bytes


def _repeated_strings(tag: bytes) -> _Encoder:
    one = _length_delimited(tag, True, True, False)

    def strings(v: Any) -> bytes:
        if type(v) is not list:
            raise _NOT_CERTAIN
        return b"".join([one(x) for x in v])
    return strings


def _message(obj: Any, table: _Table) -> bytes:
    """The fields of the JSON object ``obj`` of the message ``table`` describes, as protobuf bytes in field
    number order."""
    if type(obj) is not dict:
        raise _NOT_CERTAIN
    plan = table.plans.get(tuple(obj), _NO_PLAN)
    if plan is _NO_PLAN:
        plan = _plan(obj, table)
    if plan is None:
        return _fields(obj, table.fields)
    return b"".join([encode(value) for key, encode in plan if (value := obj[key]) is not None])


_NO_PLAN: Any = object()


def _plan(obj: dict[str, Any], table: _Table) -> _Plan | None:
    """The plan of ``obj``'s keys (kept, see PLAN_SIZE), or None when they name a field twice (both spellings)
    or two members of a oneof: :func:`_fields` then looks at the values too (a null counts as absent)."""
    keys = tuple(obj)
    found: list[tuple[int, str, _Encoder]] = []
    numbers: set[int] = set()
    oneofs = 0
    plan: _Plan | None = None
    for name in keys:
        field = table.fields.get(name)
        if field is None:
            if name[:1] == "[":
                raise _NOT_CERTAIN  # an extension's name: json_format refuses it (not kept: rare)
            continue  # unknown: ignored, as json_format with ignore_unknown_fields
        number, in_oneof, encode = field
        if number in numbers:
            break
        numbers.add(number)
        oneofs += in_oneof is not None
        found.append((number, name, encode))
    else:
        if oneofs <= 1:
            found.sort(key=_first)
            plan = tuple([(name, encode) for _, name, encode in found])
    if len(table.plans) >= PLAN_SIZE:
        table.plans.clear()
    table.plans[keys] = plan
    return plan


def _fields(obj: dict[str, Any], fields: dict[str, _Field]) -> bytes:
    """:func:`_message` field by field, for the objects that have no plan."""
    parts: list[tuple[int, bytes]] = []
    last = 0
    ordered = True
    oneof: str | None = None
    for name, value in obj.items():
        field = fields.get(name)
        if field is None:
            if name[:1] == "[":
                raise _NOT_CERTAIN  # an extension's name: json_format refuses it
            continue  # unknown: ignored, as json_format with ignore_unknown_fields
        if value is None:
            continue
        number, in_oneof, encode = field
        if number <= last:
            if number == last or any(p[0] == number for p in parts):
                raise _NOT_CERTAIN  # both spellings of one field
            ordered = False
        last = number
        if in_oneof is not None:
            if oneof is not None:
                raise _NOT_CERTAIN
            oneof = in_oneof
        encoded = encode(value)
        if encoded:
            parts.append((number, encoded))
    if not ordered:
        parts.sort(key=_first)
    return b"".join([p for _, p in parts])


def _first(part: tuple[int, object] | tuple[int, str, object]) -> int:
    return part[0]


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


def _length(n: int) -> bytes:
    """A length as a varint (a message's, a string's)."""
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    return _varint(n)


def _fixed64(n: int) -> bytes:
    return _PACK_Q(n & 0xFFFFFFFFFFFFFFFF)


def _fixed32(n: int) -> bytes:
    return _PACK_I(n & 0xFFFFFFFF)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _varint_small(n: int) -> bytes:
    return _SMALL[n] if 0 <= n < 0x80 else _varint(n)


_INF = float("inf")
_NINF = float("-inf")
_PACK_D = struct.Struct("<d").pack
_PACK_Q = struct.Struct("<Q").pack
_PACK_I = struct.Struct("<I").pack
_TABLES: dict[str, _Table] = {}
_REQUEST = _table(ExportTraceServiceRequest.DESCRIPTOR, _TABLES)


# -- canonical OTLP/JSON by msgspec's typed decoding ----------------------------------------------------------
#
# The containers and the span (the request, ResourceSpans, ScopeSpans, Span) are decoded by msgspec into structs
# made from the descriptors, with their lowerCamelCase keys only and no unknown key; their scalar fields are
# checked by msgspec (int or string for integers, string for ids and text) and encoded by the table's encoders;
# every other message is kept as its raw JSON text (``msgspec.Raw``), so an attribute, a status, a resource or a
# scope written the same way as one seen before is one dict lookup (the raw text decides the value: a memo per
# field, see MEMO_SIZE, of texts of at most MEMO_RAW bytes), and one not seen before is decoded and walked as
# above. Anything else (a snake_case or unknown key, a float or bool where an integer belongs, what msgspec
# refuses) raises, and the document takes the ways of request_bytes below it. msgspec gives the same document
# as json.loads whenever it gives one (integers beyond 64 bits included); where json.loads accepts what
# msgspec refuses (NaN and Infinity, numbers that overflow to infinity, lone surrogates, a BOM, deep nesting),
# json.loads decides.

MEMO_RAW = 256
# The messages decoded into structs; every other message field is raw JSON text.
_SPINE = frozenset(d.full_name for d in (
    ExportTraceServiceRequest.DESCRIPTOR, ResourceSpans.DESCRIPTOR, ScopeSpans.DESCRIPTOR, Span.DESCRIPTOR))
_INTEGERS = frozenset((
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_ENUM))


def _typed(desc: Descriptor) -> tuple[Any, _Encoder]:
    """The msgspec struct of the message ``desc`` (in _SPINE) and the encoder of one such struct."""
    T = FieldDescriptor
    table = _TABLES[desc.full_name]
    spec: list[tuple[str, Any, Any]] = []
    encoders: list[_Encoder] = []
    for f in sorted(desc.fields, key=_number):
        encode = table.fields[f.json_name][2]
        tag = _varint(f.number << 3 | 2)
        if f.type == T.TYPE_MESSAGE:
            sub = f.message_type
            if f.is_repeated and sub.full_name in _SPINE:
                struct, item = _typed(sub)
                spec.append((f.json_name, list[struct] | None, None))  # type: ignore[valid-type]
                encoders.append(_framed_items(tag, item))
            elif f.is_repeated and sub.full_name == _KEY_VALUE:
                spec.append((f.json_name, list[_Raw] | None, None))
                encoders.append(_raw_key_values(tag, _TABLES[sub.full_name]))
            else:
                spec.append((f.json_name, _Raw, _Raw(b"")))
                encoders.append(_raw_field(_message_encoder(tag, _TABLES[sub.full_name])
                                           if not f.is_repeated else encode, memo=not f.is_repeated))
        elif f.is_repeated or f.containing_oneof is not None or f.type not in _INTEGERS | {
                T.TYPE_STRING, T.TYPE_BYTES, T.TYPE_BOOL}:
            spec.append((f.json_name, _Raw, _Raw(b"")))
            encoders.append(_raw_field(encode, memo=False))
        else:
            kind: Any = str if f.type in (T.TYPE_STRING, T.TYPE_BYTES) else bool if f.type == T.TYPE_BOOL \
                else int | str
            spec.append((f.json_name, kind | None, None))
            encoders.append(_typed_scalar(f, f.name in _HEX_FIELDS.get(desc.full_name, ()), encode))
    struct = _defstruct(desc.name, spec, forbid_unknown_fields=True, gc=False)

    def encode_struct(v: Any) -> bytes:
        return b"".join([encode(x) for encode, x in zip(encoders, _astuple(v), strict=True) if x is not None])
    return struct, encode_struct


def _typed_scalar(f: FieldDescriptor, hex_id: bool, encode: _Encoder) -> _Encoder:
    """The encoder of a scalar field whose type msgspec checked: for the hot ones (ids, times, small enums) the
    table's encoder less its type checks; anything unusual still goes to the table's encoder."""
    T = FieldDescriptor
    tag = _varint(f.number << 3 | (2 if hex_id else 1 if f.type == T.TYPE_FIXED64 else 0))
    if hex_id:
        fromhex = bytes.fromhex

        def hex_id_(v: str) -> bytes:
            if not v:
                return b""
            b = fromhex(v)  # (not hex, not ASCII: raises, and json_format decides)
            n = len(b)
            if n * 2 != len(v) or n >= 0x80:  # fromhex skips whitespace, the json_format path refuses it
                return encode(v)
            return tag + _SMALL[n] + b
        return hex_id_ if not f.has_presence else encode
    if f.type == T.TYPE_FIXED64 and not f.has_presence:
        high = (1 << 64) - 1

        def fixed64(v: int | str) -> bytes:
            n = int(v) if type(v) is str and v.isdigit() and v.isascii() else v
            if type(n) is not int or n < 0 or n > high:
                return encode(v)
            return tag + _PACK_Q(n) if n else b""
        return fixed64
    if f.type == T.TYPE_ENUM and not f.has_presence:
        def small_enum(v: int | str) -> bytes:
            if type(v) is int and 0 <= v < 0x80:
                return tag + _SMALL[v] if v else b""
            return encode(v)
        return small_enum
    return encode


def _number(f: FieldDescriptor) -> int:
    return int(f.number)


def _raw_key_values(tag: bytes, table: _Table) -> _Encoder:
    """A repeated ``KeyValue`` field of raw items: each item's text seen before is one memo lookup."""
    memo: dict[bytes, bytes] = {}
    _CACHES["attributes"].append(memo)
    plain = _message_encoder(tag, table)

    def key_values(v: Any) -> bytes:
        texts = list(map(bytes, v))
        try:
            return b"".join(map(memo.__getitem__, texts))  # every item seen before (the usual case)
        except KeyError:
            pass
        out: list[bytes] = []
        append = out.append
        get = memo.get
        for text in texts:
            found = get(text)
            if found is None:
                found = plain(_any_decode(text))
                if len(text) <= MEMO_RAW:
                    if len(memo) >= MEMO_SIZE:
                        memo.clear()
                    memo[text] = found
            append(found)
        return b"".join(out)
    return key_values


def _raw_field(encode: _Encoder, memo: bool) -> _Encoder:
    """A field kept as raw text: absent or null is left out, as in the walk; a message's text seen before is
    one memo lookup."""
    seen: dict[bytes, bytes] = {}
    if memo:
        _CACHES["messages"].append(seen)

    def raw_field(raw: Any) -> bytes:
        text = bytes(raw)
        if not text:
            return b""
        found = seen.get(text)
        if found is None:
            value = _any_decode(text)
            found = b"" if value is None else encode(value)
            if memo and len(text) <= MEMO_RAW:
                if len(seen) >= MEMO_SIZE:
                    seen.clear()
                seen[text] = found
        return found
    return raw_field


_typed_decode: Callable[[bytes | str], Any] | None
try:
    from msgspec import Raw as _Raw
    from msgspec import defstruct as _defstruct
    from msgspec.json import Decoder as _Decoder
    from msgspec.structs import astuple as _astuple
except ImportError:  # (a dependency; without it, json.loads and the walk)
    _typed_decode = None
else:
    _any_decode = _Decoder().decode
    _request_struct, _typed_request = _typed(ExportTraceServiceRequest.DESCRIPTOR)
    _typed_decode = _Decoder(_request_struct).decode
