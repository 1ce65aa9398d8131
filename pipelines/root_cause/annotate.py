"""``annotate: true``: the primary root cause written on the signal span as ``rootcause.*`` attributes."""

from __future__ import annotations

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.wire import encode_varint, frame
from pipelines.root_cause.model import RootCause

SERVICE = "rootcause.service"
SPAN_NAME = "rootcause.span_name"
SPAN_ID = "rootcause.span_id"
DEPTH = "rootcause.depth"
PATH = "rootcause.path"
KEYS = frozenset((SERVICE, SPAN_NAME, SPAN_ID, DEPTH, PATH))

# Wire tags: Span.attributes (9), KeyValue.key (1) and .value (2), AnyValue.string_value (1), .int_value (3),
# .array_value (5), ArrayValue.values (1).
_ATTRIBUTE, _KEY, _VALUE, _STRING, _INT, _ARRAY, _VALUES = 0x4A, 0x0A, 0x12, 0x0A, 0x18, 0x2A, 0x0A


def _attribute(key: str, any_value: bytes) -> bytes:
    return frame(_ATTRIBUTE, frame(_KEY, key.encode()) + frame(_VALUE, any_value))


def _string(value: str) -> bytes:
    return frame(_STRING, value.encode())


def attributes_wire(cause: RootCause) -> bytes:
    """The five ``rootcause.*`` attributes of ``cause`` as ``Span.attributes`` entries on the wire."""
    path = b"".join(frame(_VALUES, _string(element)) for element in cause.path)
    return b"".join((
        _attribute(SERVICE, _string(cause.service)),
        _attribute(SPAN_NAME, _string(cause.span_name)),
        _attribute(SPAN_ID, _string(cause.span_id.hex())),
        _attribute(DEPTH, bytes((_INT,)) + encode_varint(cause.depth & 0xFFFF_FFFF_FFFF_FFFF)),
        _attribute(PATH, frame(_ARRAY, path)),
    ))


def annotate(span: Span, cause: RootCause, present: bool = True) -> None:
    """Replace the span's ``rootcause.*`` attributes (those five keys) with ``cause``'s.

    ``present`` False promises that the span has none of them yet (the caller saw no ``rootcause.`` in
    the trace's bytes), which skips reading every attribute key. The new attributes are merged in from
    their wire form: one protobuf call instead of building each message field by field."""
    if present:
        attrs = span.attributes
        for i in range(len(attrs) - 1, -1, -1):
            if attrs[i].key in KEYS:
                del attrs[i]
    span.MergeFromString(attributes_wire(cause))
