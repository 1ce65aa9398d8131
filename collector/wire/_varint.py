"""Varints and field headers: the pieces every protobuf message is made of.

A field is a tag (a varint: field number << 3 | wire type) and a value: a varint (wire type 0), eight
bytes (1), a varint length and that many bytes (2), or four bytes (5).
"""

from __future__ import annotations

from collections.abc import Iterator

from collector.wire._errors import WireError

_SMALL = [bytes((i,)) for i in range(0x80)]  # one-byte varints


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """Decode a varint at ``i``; returns (value, next index). Raises :class:`WireError` when the data ends
    first."""
    if i >= len(data):
        raise WireError("truncated varint")
    b = data[i]
    if b < 0x80:
        return b, i + 1
    result = b & 0x7F
    shift = 7
    i += 1
    while True:
        if i >= len(data) or shift > 63:
            raise WireError("truncated or oversized varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def encode_varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame(tag: int, payload: bytes | bytearray) -> bytes:
    """One length-delimited field: tag byte, varint length, payload."""
    return bytes((tag,)) + encode_varint(len(payload)) + payload


def iter_fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(tag, field start, payload start, payload end) of each field in data[start:end], for the containers
    of an OTLP request, whose tags are one byte: a longer tag raises :class:`WireError` (see
    :func:`read_field` for any field)."""
    i = start
    while i < end:
        field_start = i
        tag = data[i]
        i += 1
        if tag & 0x80:
            raise WireError("unexpected multi-byte tag in an OTLP container")
        wire_type = tag & 7
        if wire_type == 2:
            ln, i = read_varint(data, i)
            if i + ln > end:
                raise WireError("length-delimited field runs past its container")
            yield tag, field_start, i, i + ln
            i += ln
        elif wire_type == 0:
            _, j = read_varint(data, i)
            yield tag, field_start, i, j
            i = j
        elif wire_type == 5:
            yield tag, field_start, i, i + 4
            i += 4
        elif wire_type == 1:
            yield tag, field_start, i, i + 8
            i += 8
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    if i != end:
        raise WireError("field runs past its container")


def read_field(data: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
    """The field at ``pos`` (any tag): (field number, wire type, value start, value end). Raises
    :class:`WireError` for a wire type without a known size or a value running past ``end``."""
    tag = data[pos]  # one-byte tags and one- or two-byte lengths inline, the rest through read_varint
    p = pos + 1
    if tag >= 0x80:
        tag, p = read_varint(data, pos)
    wire_type = tag & 7
    if wire_type == 2:  # first: most fields of a request are length-delimited
        try:
            n = data[p]
            if n < 0x80:
                p += 1
            elif data[p + 1] < 0x80:
                n = (n & 0x7F) | (data[p + 1] << 7)
                p += 2
            else:
                n, p = read_varint(data, p)
        except IndexError:  # (checked here, not before each read: a valid message never gets here)
            raise WireError("truncated length") from None
        n += p
        if n > end:
            raise WireError("field runs past the end of its message")
        return tag >> 3, 2, p, n
    if wire_type == 0:
        _, value_end = read_varint(data, p)
    elif wire_type == 1:
        value_end = p + 8
    elif wire_type == 5:
        value_end = p + 4
    else:
        raise WireError(f"unsupported wire type {wire_type}")
    if value_end > end:
        raise WireError("field runs past the end of its message")
    return tag >> 3, wire_type, p, value_end
