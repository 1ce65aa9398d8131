"""Which span names a buffered trace has, without decoding its spans.

The trace buffer keeps a trace's spans as framed ``ScopeSpans.spans`` entries. Parsed as a message that
knows only each span's ``name`` (field 5), upb skips everything else; dropping the unknown fields and
serializing again leaves the names alone, a hundred-odd bytes for a ten-span trace, in which the framed form
of a name (tag ``0x2a``, its length, its bytes) is found with one ``in`` per name looked for. That is about
a third of a full decode, and no Python object per span (docs/components/processors/trace_tests.md).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from collector.model import Trace


def _names_message() -> Any:
    fdp = descriptor_pb2.FileDescriptorProto(name="tracetriage/trace_tests/span_names.proto",
                                             package="tracetriage.trace_tests", syntax="proto3")
    f = descriptor_pb2.FieldDescriptorProto
    span = fdp.message_type.add(name="SpanName")
    span.field.add(name="name", number=5, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    spans = fdp.message_type.add(name="SpanNames")
    spans.field.add(name="spans", number=2, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
                    type_name=".tracetriage.trace_tests.SpanName")
    pool = descriptor_pool.DescriptorPool()  # our own pool: nothing else can clash with these names
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tracetriage.trace_tests.SpanNames"))


_SpanNames = _names_message()


def name_field(name: str) -> bytes:
    """A span name as it stands on the wire in the names-only form: tag, varint length, UTF-8 bytes."""
    data = name.encode()
    n = len(data)
    length = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            length.append(b | 0x80)
        else:
            length.append(b)
            break
    return b"\x2a" + bytes(length) + data


def names_blob(trace: Trace) -> bytes:
    """The trace's span names only, as wire bytes (search them with :func:`name_field`)."""
    chunks = trace.chunks
    data = next(iter(chunks.values())) if len(chunks) == 1 else b"".join(chunks.values())
    msg = _SpanNames.FromString(bytes(data) if isinstance(data, bytearray) else data)
    msg.DiscardUnknownFields()
    blob: bytes = msg.SerializeToString()
    return blob


def span_names(trace: Trace) -> set[str]:
    """Every span name of the trace (for many names to look for)."""
    chunks = trace.chunks
    data = next(iter(chunks.values())) if len(chunks) == 1 else b"".join(chunks.values())
    return {s.name for s in _SpanNames.FromString(bytes(data)).spans}
