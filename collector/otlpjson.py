"""OTLP/JSON codec for traces (the OTLP/HTTP ``application/json`` encoding).

OTLP JSON is the protobuf JSON mapping with a few differences, handled here:

* ``traceId``, ``spanId``, ``parentSpanId`` (and the ids of links) are hex strings, not base64;
* enums are written as integers (names are accepted when parsing);
* keys are lowerCamelCase (the proto field names in snake_case are accepted when parsing);
* 64-bit integers may be strings or numbers; unknown fields are ignored.

This is not the hot path (OTLP/protobuf is), so the codec leans on ``google.protobuf.json_format``
and only rewrites the id fields.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["decode_request", "decode_response", "encode_message", "encode_request", "encode_response"]

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
    try:
        return _decode_request(data)
    except RecursionError:  # a hostile document nested deeper than any OTLP request: a client error
        raise ValueError("JSON nested too deeply") from None


def _decode_request(data: bytes | str) -> ExportTraceServiceRequest:
    try:
        doc = json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data)
    except UnicodeDecodeError as e:
        raise ValueError(f"request body is not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object (ExportTraceServiceRequest), got {_json_kind(doc)}")
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
