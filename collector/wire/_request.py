"""Building an ``ExportTraceServiceRequest`` from stored span bytes, without decoding a span."""

from __future__ import annotations

from collections.abc import Iterable

from collector.wire._varint import encode_varint

Groups = Iterable[tuple[bytes, bytes, Iterable[bytes | bytearray | memoryview]]]


def build_request(groups: Groups) -> bytes:
    """Serialize an ``ExportTraceServiceRequest`` from (resource fields, scope fields, framed span entries)
    groups. Groups with the same resource fields share one ``ResourceSpans``.

    Lengths are summed first and every piece is joined once: each span's bytes are copied once."""
    out = build_request_within(groups, -1)
    assert out is not None
    return out


def build_request_within(groups: Groups, limit: int) -> bytes | None:
    """:func:`build_request`, or None, having copied nothing, when the request would be larger than ``limit``
    bytes (-1: no limit)."""
    by_resource: dict[bytes, list[tuple[bytes, list[bytes | bytearray | memoryview], int]]] = {}
    for resource_fields, scope_fields, span_entries in groups:
        entries = list(span_entries)
        size = len(scope_fields) + sum(map(len, entries))
        scopes = by_resource.get(resource_fields)
        if scopes is None:
            scopes = by_resource[resource_fields] = []
        scopes.append((scope_fields, entries, size))
    out: list[bytes | bytearray | memoryview] = []
    total = 0
    for resource_fields, scopes in by_resource.items():
        headers = [b"\x12" + encode_varint(size) for _, _, size in scopes]
        rs_size = len(resource_fields) + sum(len(h) + size for h, (_, _, size) in zip(headers, scopes, strict=True))
        head = b"\x0a" + encode_varint(rs_size)
        total += len(head) + rs_size
        out.append(head)
        out.append(resource_fields)
        for header, (scope_fields, entries, _) in zip(headers, scopes, strict=True):
            out.append(header)
            out.append(scope_fields)
            out.extend(entries)
    if 0 <= limit < total:
        return None
    return b"".join(out)
