"""Flat encoding of Kafka produce requests: each record batch is copied once, not once per nesting level.

aiokafka encodes a request by joining the encoding of each field, level by level: a produce request's
record batches (the span data, megabytes per request) are copied by ``Bytes``, then by each enclosing
``Schema`` and ``Array`` join, six times before the connection adds its header. That showed as a tenth
of the collector's CPU in the pass-through benchmark. :func:`install` gives aiokafka's produce request
classes an ``encode`` that collects every field's bytes in one list and joins them once. The bytes are
identical (``tests/collector/kafka/test_units.py`` compares both encodings); types other than plain ``Schema``,
``Array`` and ``Bytes`` are encoded by aiokafka itself.
"""

from __future__ import annotations

import struct
from typing import Any

from aiokafka.protocol import produce
from aiokafka.protocol.types import Array, Bytes, Schema

_INT32 = struct.Struct(">i")
_NULL = _INT32.pack(-1)


def _collect(kind: Any, value: Any, out: list[bytes | bytearray]) -> None:
    if type(kind) is Schema:
        for field, item in zip(kind.fields, value, strict=True):
            _collect(field, item, out)
    elif type(kind) is Array:
        if value is None:
            out.append(_NULL)
            return
        out.append(_INT32.pack(len(value)))
        for item in value:
            _collect(kind.array_of, item, out)
    elif kind is Bytes:
        if value is None:
            out.append(_NULL)
        else:
            out.append(_INT32.pack(len(value)))
            out.append(value)
    else:
        out.append(kind.encode(value))


def flat_encode(self: Any) -> bytes:
    """``Struct.encode`` with one join: the same bytes as aiokafka's."""
    schema = self.SCHEMA
    out: list[bytes | bytearray] = []
    _collect(schema, [self.__dict__[name] for name in schema.names], out)
    return b"".join(out)


def produce_request_classes() -> list[type]:
    return [cls for name, cls in vars(produce).items()
            if name.startswith("ProduceRequest_v") and isinstance(cls, type)]


def install() -> None:
    """Give aiokafka's produce request classes the flat ``encode`` (idempotent)."""
    for cls in produce_request_classes():
        setattr(cls, "encode", flat_encode)  # noqa: B010 (a class attribute of aiokafka's)


__all__ = ["flat_encode", "install", "produce_request_classes"]
