"""Reading spans in their wire form: the framed entries of a ``ScopeSpans`` (tag ``0x12``, a varint length,
the span's bytes) and the few fields of a span that are read without decoding it.

A span in canonical encoding starts ``0a 10 <trace id, 16 bytes> 12 08 <span id, 8 bytes>``, then an
optional ``1a <trace state>`` and ``22 08 <parent span id>`` (see :func:`span_entries`).
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Iterator

from collector.wire._errors import WireError
from collector.wire._varint import encode_varint, frame, read_field, read_varint

_HEADER = struct.Struct("<H16xH").unpack_from  # a span's first tag and length, and its second (after 16 bytes)
_CANONICAL_HEADER = (0x100A, 0x0812)  # 0a 10 <trace id> 12 08 <span id>
_SPAN_ID_AT = 18  # where a canonical span's span id field (12 08 <span id>) starts
_PARENT_AFTER = 28  # a canonical span's parent id field comes after its header and trace state

# Status.code = ERROR (field 3, varint 2) as every protobuf encoder writes it: a span without these bytes has
# no ERROR status.
ERROR_CODE = b"\x18\x02"
OK_CODE = b"\x18\x01"  # Status.code = OK, likewise
# An attribute key "error" (KeyValue.key, length 5) on the wire: a run of spans without it has no ``error``
# attribute.
ERROR_KEY = b"\n\x05error"
_ERROR_TEXT = b"error"  # in the key of an ``error`` attribute however it is framed


def error_status_in(data: bytes, start: int = 0, end: int = -1) -> bool:
    """Whether some span of ``data[start:end]`` (whole span entries) may have an ERROR status, wherever its
    encoder put the ``status`` field (15: tag ``7a``): a ``7a`` byte whose length-delimited value begins or
    ends with the code ERROR (``18 02``), as a ``Status`` of a message and a code does in either order.
    False only when no span has an ERROR status."""
    if end < 0:
        end = len(data)
    p = data.find(b"\x7a", start, end)
    while p >= 0:
        if status_error_at(data, p, end):
            return True
        p = data.find(b"\x7a", p + 1, end)
    return False


def status_error_at(data: bytes, p: int, end: int) -> bool:
    """Whether the ``7a`` byte at ``p`` may start a ``status`` field with the code ERROR (see
    :func:`error_status_in`) that ends by ``end``."""
    b = data[p + 1] if p + 1 < end else 0
    if b < 0x80:
        c = p + 2
        e = c + b
    else:
        try:
            ln, c = read_varint(data, p + 1)
        except WireError:
            return False
        e = c + ln
    return e <= end and e - c >= 2 and ((data[c] == 0x18 and data[c + 1] == 0x02)
                                        or (data[e - 2] == 0x18 and data[e - 1] == 0x02))


def error_key_may_be_true(data: bytes, h: int) -> bool:
    """Whether the :data:`ERROR_KEY` bytes at ``h`` may be the key of an ``error`` attribute whose value is
    true (bool true, or a string equal to "true" ignoring case: what makes a span in error).

    False only when the bytes are a whole ``KeyValue`` as encoders write it (a tag and a one-byte length
    before the key, then at most one value field, ending where that length says) and its value is anything
    else: ``error = false``, ``"false"``, ``0``, no value. A ``KeyValue`` that writes fields before its key
    or its key twice is not what any encoder writes; such bytes, and anything else unusual, say "maybe"."""
    if h < 2 or data[h - 2] >= 0x80:
        return True
    size = data[h - 1]
    e = h + size
    if size < 7 or size >= 0x80 or e > len(data):
        return True
    q = h + 7
    if q == e:
        return False  # no value: not true
    if data[q] != 0x12 or data[q + 1] >= 0x80 or q + 2 + data[q + 1] != e:
        return True
    return _value_may_be_true(data, q + 2, e)


def _value_may_be_true(data: bytes, p: int, e: int) -> bool:
    """Whether the ``AnyValue`` in ``data[p:e]`` may be bool true or the string "true" (any case): False
    for one field of another kind, or a false bool, or another string."""
    if p == e:
        return False
    tag = data[p]
    if tag == 0x10:  # bool_value
        return e - p != 2 or data[p + 1] != 0
    if tag == 0x18:  # int_value: a varint to the end
        return e - p > 11 or any(b >= 0x80 for b in data[p + 1:e - 1]) or data[e - 1] >= 0x80
    if tag == 0x21:  # double_value
        return e - p != 9
    if tag in (0x0A, 0x2A, 0x32, 0x3A):  # string, array, kvlist, bytes: one field filling the value
        if e - p < 2 or data[p + 1] >= 0x80 or p + 2 + data[p + 1] != e:
            return True
        return tag == 0x0A and e - p == 6 and data[p + 2:e].lower() == b"true"
    return True


def error_keys_may_be_true(data: bytes, start: int = 0, end: int = -1) -> bool:
    """Whether ``data[start:end]`` (whole span entries) may hold an ``error`` attribute that is true: an
    :data:`ERROR_KEY` for which :func:`error_key_may_be_true` says "maybe"."""
    if end < 0:
        end = len(data)
    h = data.find(ERROR_KEY, start, end)
    while h >= 0:
        if error_key_may_be_true(data, h):
            return True
        h = data.find(ERROR_KEY, h + 1, end)
    return False


def _text_may_be_error_key(data: bytes, h: int) -> bool:
    """Whether the text ``error`` at ``h`` may be the key of an ``error`` attribute that is true. The key's
    length is 5: its varint's last byte is 05 (then the tag 0a stands before it) or, padded, 00."""
    if h < 1:
        return True
    last = data[h - 1]
    if last == 0x05:
        return h < 2 or (data[h - 2] == 0x0A and error_key_may_be_true(data, h - 2))
    return last == 0x00


def span_entry(span: bytes | bytearray) -> bytes:
    """A span's bytes framed as a ``ScopeSpans.spans`` entry."""
    return b"\x12" + encode_varint(len(span)) + span


def span_entries(data: bytes | bytearray, canonical: bool = False) -> list[int] | None:
    """Where each framed span entry (tag ``0x12``, length, span) of a trace chunk starts, then the chunk's
    length. None for a span of 16 KiB or more (a three-byte length) and, with ``canonical``, for a span
    whose header is not ``0a 10 <trace id> 12 08 <span id>``. The chunk must be framed entries only, as
    the trace buffer keeps them."""
    n = len(data)
    at: list[int] = []
    i = 0
    while i < n:
        at.append(i)
        b = data[i + 1]
        if b < 0x80:
            k = i + 2
            e = k + b
        else:
            b2 = data[i + 2]
            if b2 >= 0x80:
                return None
            k = i + 3
            e = k + ((b & 0x7F) | (b2 << 7))
        if canonical and (e - k < 28 or _HEADER(data, k) != _CANONICAL_HEADER):
            return None
        i = e
    at.append(n)
    return at


def entries_containing(data: bytes, at: list[int], needle: bytes) -> Iterator[int]:
    """Indices (into ``at``, from :func:`span_entries`) of the span entries whose bytes contain ``needle``."""
    h = data.find(needle)
    while h >= 0:
        j = bisect_right(at, h) - 1
        yield j
        h = data.find(needle, at[j + 1])


def entries_maybe_in_error(data: bytes, at: list[int]) -> list[int]:
    """Indices (into ``at``, from :func:`span_entries`) of the span entries that may be in error: those whose
    bytes hold a status field with the code ERROR (:func:`status_error_at`, wherever the encoder wrote it;
    an attribute whose value is 2 is not one), then those that contain the text ``error`` where
    it may be the key of an ``error`` attribute that is true (:func:`error_key_may_be_true`: not
    ``error = false``, nor ``error.type`` or an event named ``error``). A span may be in both lists; a span
    in neither has no ERROR status and no ``error`` attribute that is true."""
    out: list[int] = []
    h = data.find(b"\x7a")  # a status field's tag, wherever the encoder wrote it (not any 18 02: an int 2)
    while h >= 0:
        j = bisect_right(at, h) - 1
        if status_error_at(data, h, at[j + 1]):  # (a status ends inside its span)
            out.append(j)
            h = data.find(b"\x7a", at[j + 1])
        else:
            h = data.find(b"\x7a", h + 1)
    h = data.find(_ERROR_TEXT)
    while h >= 0:
        if _text_may_be_error_key(data, h):
            j = bisect_right(at, h) - 1
            out.append(j)
            h = data.find(_ERROR_TEXT, at[j + 1])
        else:
            h = data.find(_ERROR_TEXT, h + 1)
    return out


def entry_span(data: bytes, at: list[int], j: int) -> bytes:
    """The span bytes of entry ``j`` (without its tag and length)."""
    i = at[j]
    return data[i + (2 if data[i + 1] < 0x80 else 3):at[j + 1]]


# The two searches below find a field's bytes anywhere in the chunk and keep the hits at the field's place
# in their span (the same bytes inside an attribute value are not the field).


def entries_with_span_id(data: bytes, at: list[int], span_id: bytes) -> list[int]:
    """Indices (into ``at``, from :func:`span_entries` with ``canonical``) of the entries whose span has the
    span id ``span_id`` (8 bytes)."""
    field = b"\x12\x08" + span_id
    out: list[int] = []
    h = data.find(field)
    while h >= 0:
        j = bisect_right(at, h) - 1
        if h == at[j] + (2 if data[at[j] + 1] < 0x80 else 3) + _SPAN_ID_AT:
            out.append(j)
        h = data.find(field, h + 1)
    return out


def entries_with_parent_id(data: bytes, at: list[int], parent_span_id: bytes) -> list[int]:
    """Indices (into ``at``, from :func:`span_entries` with ``canonical``) of the entries whose span has the
    parent span id ``parent_span_id`` (8 bytes)."""
    field = b"\x22\x08" + parent_span_id
    out: list[int] = []
    h = data.find(field)
    while h >= 0:
        j = bisect_right(at, h) - 1
        want = at[j] + (2 if data[at[j] + 1] < 0x80 else 3) + _PARENT_AFTER
        if want < at[j + 1] and data[want] == 0x1A:  # after the trace state
            tl, want = read_varint(data, want + 1)
            want += tl
        if h == want:
            out.append(j)
        h = data.find(field, h + 1)
    return out


def span_trace_id(data: bytes, start: int, end: int) -> bytes:
    """The ``trace_id`` (field 1) of the span encoded in ``data[start:end]``; empty if absent. Raises
    :class:`~collector.wire.WireError` when the span's fields are malformed."""
    if end - start >= 18 and data[start] == 0x0A and data[start + 1] == 16:
        return data[start + 2:start + 18]  # the usual layout: trace_id first, 16 bytes
    pos = start
    while pos < end:
        number, wire_type, vstart, vend = read_field(data, pos, end)
        if number == 1 and wire_type == 2:
            return data[vstart:vend]
        pos = vend
    return b""


_U64 = struct.Struct("<Q").unpack_from
_TIMES = struct.Struct("<QxQ").unpack_from  # start (fixed64), the end field's tag, end (fixed64)
# Tags of the fields a canonical header holds (trace_id .. end_time_unix_nano): one of them after the header
# means the fields are not in canonical order.
_HEADER_TAGS = frozenset((0x0A, 0x12, 0x1A, 0x22, 0x2A, 0x30, 0x39, 0x41))


def read_span_headers(data: bytes, at: list[int], ids: list[bytes], parent_ids: list[bytes], names: list[bytes],
                      kinds: list[int], starts: list[int], ends: list[int]) -> bool:
    """Append the header fields of every span entry of ``at`` (from ``span_entries(data, canonical=True)``)
    to the lists: span id, parent span id (``b""`` for none), UTF-8 name, kind, start and end (unix nanos, 0
    when absent). No span is decoded.

    A canonical header is ``0a 10 <trace id> 12 08 <span id> [1a trace_state] [22 parent] [85 01 flags]
    [2a name] [30 kind] [39 start] [41 end]``, each optional field at most once and in that order, as every
    protobuf encoder writes them (by field number, the flags last; protobuf.js by declaration, the flags
    after the parent id). Returns False, with the lists partly filled, when a header is not canonical: the
    caller then decodes the spans instead."""
    header_tags, u64, times = _HEADER_TAGS, _U64, _TIMES
    for j in range(len(at) - 1):
        i = at[j]
        k = i + (2 if data[i + 1] < 0x80 else 3)
        e = at[j + 1]
        ids.append(data[k + 20:k + 28])
        p = k + 28
        b = data[p] if p < e else 0
        if b == 0x1A:
            ln, p = read_varint(data, p + 1)
            p += ln
            b = data[p] if p < e else 0
        if b == 0x22:
            ln = data[p + 1]
            if ln == 8:
                parent_ids.append(data[p + 2:p + 10])
            elif ln == 0:
                parent_ids.append(b"")
            else:
                return False
            p += 2 + ln
            b = data[p] if p < e else 0
        else:
            parent_ids.append(b"")
        if b == 0x85 and p + 6 <= e and data[p + 1] == 0x01:  # flags, where protobuf.js writes them
            p += 6
            b = data[p] if p < e else 0
        if b == 0x2A:
            ln = data[p + 1]
            if ln < 0x80:
                names.append(data[p + 2:p + 2 + ln])
                p += 2 + ln
            else:
                ln, q = read_varint(data, p + 1)
                names.append(data[q:q + ln])
                p = q + ln
            b = data[p] if p < e else 0
        else:
            names.append(b"")
        if b == 0x30:
            kind = data[p + 1]
            if kind < 0x80:
                p += 2
            else:
                kind, p = read_varint(data, p + 1)
            b = data[p] if p < e else 0
        else:
            kind = 0
        kinds.append(kind)
        if b == 0x39 and p + 18 <= e and data[p + 9] == 0x41:  # both times, as encoders write them
            start, end = times(data, p + 1)
            p += 18
        else:
            start = end = 0
            if b == 0x39 and p + 9 <= e:
                start = u64(data, p + 1)[0]
                p += 9
            if p + 9 <= e and data[p] == 0x41:
                end = u64(data, p + 1)[0]
                p += 9
        # (flags, in field-number order after the times, may stand before a misplaced header field)
        b = data[p + 6] if p + 6 < e and data[p] == 0x85 else data[p] if p < e else 0
        if p > e or b in header_tags:
            return False
        starts.append(start)
        ends.append(end)
    return True


def entry_end(data: bytes, i: int) -> int:
    """Where the framed span entry at ``i`` (tag, length, span) ends; -1 when its length takes three bytes
    or more (a span of 16 KiB or more: the caller decodes instead)."""
    b = data[i + 1]
    if b < 0x80:
        return i + 2 + b
    b2 = data[i + 2]
    if b2 >= 0x80:
        return -1
    return i + 3 + ((b & 0x7F) | (b2 << 7))


def span_name_field(name: str) -> bytes:
    """A span name as it stands in a span's wire bytes: field 5's tag, the varint length, the UTF-8 bytes (the
    canonical encoding, which every OTLP SDK and protobuf library writes): what to search a trace's bytes
    for, and what :func:`span_around_name` takes the length of."""
    return frame(0x2A, name.encode())


def span_around_name(data: bytes, h: int, n: int) -> tuple[int, int, bytes, int, int] | None:
    """The span whose name field (``n`` bytes with its tag and length) is at ``h``, read from its canonical
    header when the framing fits: the entry's tag and length stand before the header, and the entry ends
    where ``data`` or the next entry begins. Returns (span start, span end, span id, start time, end time),
    or None (the caller then walks the entries)."""
    h2 = h - 6 if h >= 6 and data[h - 6] == 0x85 and data[h - 5] == 0x01 else h  # flags first (protobuf.js)
    if data[h2 - 2] == 0x22 and data[h2 - 1] == 0:  # an empty parent span id
        k = h2 - 30
    elif data[h2 - 10] == 0x22 and data[h2 - 9] == 0x08:  # a parent span id
        k = h2 - 38
    else:  # none
        k = h2 - 28
    if k < 2 or data[k] != 0x0A or data[k + 1] != 0x10 or data[k + 18] != 0x12 or data[k + 19] != 0x08:
        return None
    if data[k - 2] == 0x12 and data[k - 1] < 0x80:
        end = k + data[k - 1]
    elif k >= 3 and data[k - 3] == 0x12 and data[k - 2] >= 0x80 and data[k - 1] < 0x80:
        end = k + ((data[k - 2] & 0x7F) | (data[k - 1] << 7))
    else:
        return None
    size = len(data)
    if end > size or (end < size and data[end] != 0x12):
        return None
    q = h + n
    if data[q] == 0x30:  # kind
        q += 2 if data[q + 1] < 0x80 else 3
    if q + 18 > end or data[q] != 0x39 or data[q + 9] != 0x41:
        return None
    start, stop = _TIMES(data, q + 1)  # start, the end's tag, end
    return k, end, data[k + 20:k + 28], start, stop


def entry_body(data: bytes, i: int, e: int) -> bytes:
    """The span bytes of the framed entry at ``data[i:e]`` (without its tag and length)."""
    return data[i + 2 if data[i + 1] < 0x80 else i + 3:e]


def entry_header(data: bytes, i: int, e: int) -> tuple[int, bytes, bytes, int, int] | None:
    """The canonical header of the span entry at ``data[i:e]``: (span start, span id, UTF-8 name, start
    time, end time), or None when the header is not canonical or lacks either time (the caller decodes the
    span)."""
    k = i + 2 if data[i + 1] < 0x80 else i + 3
    if e - k < 30 or data[k] != 0x0A or data[k + 1] != 0x10 or data[k + 18] != 0x12 or data[k + 19] != 0x08:
        return None
    p = k + 28
    if data[p] == 0x1A:
        n, p = read_varint(data, p + 1)
        p += n
    if p < e and data[p] == 0x22:
        p += 2 + data[p + 1]
    if p + 6 <= e and data[p] == 0x85 and data[p + 1] == 0x01:  # flags, as protobuf.js writes them
        p += 6
    if p < e and data[p] == 0x2A:
        n, q = read_varint(data, p + 1)
        name = data[q:q + n]
        q += n
    else:
        name, q = b"", p
    if q < e and data[q] == 0x30:
        q += 2 if data[q + 1] < 0x80 else 3
    if q + 18 > e or data[q] != 0x39 or data[q + 9] != 0x41:
        return None
    start, end = _TIMES(data, q + 1)
    return k, data[k + 20:k + 28], name, start, end


def fields_repeat_an_id(data: bytes, j: int, end: int) -> bool:
    """Whether the span fields in ``data[j:end]`` (the rest of a span after the id fields the walks read
    from its first bytes) hold another ``trace_id``, ``span_id`` or ``parent_span_id`` field (1, 2, 4), or
    do not tile ``data[j:end]`` exactly. protobuf keeps the last of repeated id fields (a corrupt attribute
    tag can make an attribute's key and value read as such fields), the walks read the first: a span for
    which this is True is decoded with protobuf instead (or, vectorized, left to the Python walk)."""
    try:
        return _fields_repeat_an_id(data, j, end)
    except WireError:  # a varint that runs off the request: protobuf names the error
        return True


def _fields_repeat_an_id(data: bytes, j: int, end: int) -> bool:
    while j < end:
        tag = data[j]
        if tag == 0x0A or tag == 0x12 or tag == 0x22:
            return True
        if tag < 0x80:
            j += 1
        else:
            tag, j = read_varint(data, j)
            if tag == 0x0A or tag == 0x12 or tag == 0x22 or tag >> 32:
                return True  # an id field with a non-minimal tag, or no valid tag at all
        wt = tag & 7
        if wt == 2:
            if j >= end:
                return True
            ln = data[j]
            if ln < 0x80:
                j += 1 + ln
            else:
                ln, j = read_varint(data, j)
                j += ln
        elif wt == 0:
            _, j = read_varint(data, j)
        elif wt == 1:
            j += 8
        elif wt == 5:
            j += 4
        else:
            return True  # a group or an invalid wire type: protobuf decides
    return j != end
