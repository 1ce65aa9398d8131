"""Flat encoding of Kafka produce requests: each record batch is handed to the socket as it is, not copied.

aiokafka encodes a request by joining the encoding of each field, level by level: a produce request's
record batches (the span data, megabytes per request) are copied by ``Bytes``, then by each enclosing
``Schema`` and ``Array`` join, six times; then the connection joins the header to the body, and the size to
both (two more copies). That showed as a tenth of the collector's CPU in the pass-through benchmark, and
more with 4 KB attribute values. :func:`install` gives aiokafka's produce request classes an ``encode``
that collects every field's bytes in one list and joins them once, and aiokafka's connection a ``send``
that writes a produce request's size, header and that list to the socket as they are (``writelines``: the
event loop sends the pieces without joining them). The bytes on the wire are identical
(``tests/collector/kafka/test_units.py`` compares both encodings and both framings); types other than plain
``Schema``, ``Array`` and ``Bytes`` are encoded by aiokafka itself, and every other request is sent by
aiokafka's own ``send``.
"""

from __future__ import annotations

import struct
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import conn
from aiokafka.protocol import produce
from aiokafka.protocol.types import Array, Bytes, Schema
from aiokafka.util import wait_for

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


def framed_parts(request_struct: Any, correlation_id: int, client_id: str) -> list[bytes | bytearray]:
    """A produce request as aiokafka's connection frames it (size, header, body), as pieces to write in
    order: ``b"".join`` of them is what aiokafka writes."""
    header = request_struct.build_request_header(correlation_id=correlation_id, client_id=client_id).encode()
    schema = request_struct.SCHEMA
    out: list[bytes | bytearray] = [b"", header]
    _collect(schema, [request_struct.__dict__[name] for name in schema.names], out)
    out[0] = _INT32.pack(sum(map(len, out)))
    return out


_PRODUCE_STRUCTS: frozenset[type] = frozenset()
_aiokafka_send = conn.AIOKafkaConnection.send


def send(self: Any, request: Any, expect_response: bool = True) -> Any:
    """``AIOKafkaConnection.send`` writing a produce request's pieces as they are (module doc); any other
    request goes to aiokafka's own."""
    if type(request) is not produce.ProduceRequest or self._writer is None:
        return _aiokafka_send(self, request, expect_response)
    request_struct = request.prepare(self._versions)
    if type(request_struct) not in _PRODUCE_STRUCTS:
        return _aiokafka_send(self, request, expect_response)
    correlation_id = self._next_correlation_id()
    parts = framed_parts(request_struct, correlation_id, self._client_id)
    try:
        self._writer.writelines(parts)
    except OSError as err:
        self.close(reason=conn.CloseReason.CONNECTION_BROKEN)
        raise kafka_errors.KafkaConnectionError(
            f"Connection at {self._host}:{self._port} broken: {err}") from err
    if not expect_response:
        return self._writer.drain()
    fut = self._loop.create_future()
    self._requests.append((correlation_id, request_struct, fut))
    return wait_for(fut, self._request_timeout)


def produce_request_classes() -> list[type]:
    return [cls for name, cls in vars(produce).items()
            if name.startswith("ProduceRequest_v") and isinstance(cls, type)]


def install() -> None:
    """Give aiokafka's produce request classes the flat ``encode``, and its connection the ``send`` that
    writes produce requests in pieces (idempotent)."""
    global _PRODUCE_STRUCTS
    classes = produce_request_classes()
    for cls in classes:
        setattr(cls, "encode", flat_encode)  # noqa: B010 (a class attribute of aiokafka's)
    _PRODUCE_STRUCTS = frozenset(classes)
    setattr(conn.AIOKafkaConnection, "send", send)  # noqa: B010 (a method of aiokafka's)


__all__ = ["flat_encode", "framed_parts", "install", "produce_request_classes", "send"]
