"""Turns a batch's wire bytes into Kafka records, without decoding a span into a message.

The request is walked once on the wire (``ExportTraceServiceRequest`` -> ``ResourceSpans`` ->
``ScopeSpans`` -> ``Span``, with the field readers of :mod:`collector.wire`): each span stays the byte
slice it was, and only its ``trace_id`` field is read. With ``partition_traces_by_id`` the spans are
grouped by the partition their trace id's key hashes to (Kafka's default partitioner), so every span of a
trace lands on one partition while many traces share a record. Each group becomes one or more records no
larger than the size limit: the resource and scope headers are copied in front of the span slices that need
them.

The record key is the trace id as 32 lowercase hex characters, as the contrib exporter writes it
(``[]byte(traceID.String())``); a record holding several traces carries the key of its first trace,
which hashes to the same partition as all the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from collector.exporters.kafka.partition import partition_for_key, trace_partitions
from collector.wire import (
    ScopeChunk,
    TraceSpans,
    WireError,
    build_request,
    build_request_within,
    encode_varint,
    read_field,
    span_trace_id,
)

# Room left for the record's own framing (key, headers, varints) under max_message_bytes.
RECORD_OVERHEAD = 512
# A header copied into a chunk costs its bytes plus a tag and a length varint.
_FRAME = 11

Span = bytes | memoryview  # a framed span: a view of the bytes it was read from, or a copy


class Layout:
    """The resource and scope headers of a walked request, and the span slices grouped by target."""

    __slots__ = ("groups", "keys", "rs_heads", "ss_heads", "ss_rs")

    def __init__(self) -> None:
        self.rs_heads: list[bytes] = []  # non-scope fields of each ResourceSpans (resource, schema_url)
        self.ss_heads: list[bytes] = []  # non-span fields of each ScopeSpans (scope, schema_url)
        self.ss_rs: list[int] = []  # the ResourceSpans index of each ScopeSpans
        # group (partition, or 0 when not partitioning) -> [(scope index, framed span slices)]
        self.groups: dict[int, list[tuple[int, list[Span]]]] = {}
        self.keys: dict[int, bytes] = {}  # group -> record key (hex trace id of its first trace)

    def encode(self, chunk: list[tuple[int, list[Span]]]) -> bytes:
        """An ExportTraceServiceRequest holding the spans of ``chunk`` under their own headers (lengths
        summed first, every piece joined once)."""
        by_rs: list[tuple[int, list[tuple[int, list[Span]]]]] = []
        for sidx, spans in chunk:
            rs = self.ss_rs[sidx]
            if not by_rs or by_rs[-1][0] != rs:
                by_rs.append((rs, []))
            by_rs[-1][1].append((sidx, spans))
        out: list[bytes | memoryview] = []
        for rs, scopes in by_rs:
            sizes = [len(self.ss_heads[sidx]) + sum(map(len, spans)) for sidx, spans in scopes]
            heads = [b"\x12" + encode_varint(size) for size in sizes]
            rs_head = self.rs_heads[rs]
            out.append(b"\x0a" + encode_varint(len(rs_head) + sum(map(len, heads)) + sum(sizes)))
            out.append(rs_head)
            for head, (sidx, spans) in zip(heads, scopes, strict=True):
                out.append(head)
                out.append(self.ss_heads[sidx])
                out.extend(spans)
        return b"".join(out)

    def chunks(self, group: int, limit: int) -> list[tuple[list[tuple[int, list[Span]]], int]]:
        """The group's spans cut into chunks whose encoding stays within ``limit`` bytes (a span larger
        than that gets a chunk of its own). Returns (chunk, span count) pairs."""
        out: list[tuple[list[tuple[int, list[Span]]], int]] = []
        chunk: list[tuple[int, list[Span]]] = []
        size = 0
        count = 0
        for sidx, spans in self.layout_of(group):
            head = len(self.ss_heads[sidx]) + len(self.rs_heads[self.ss_rs[sidx]]) + 2 * _FRAME
            taken: list[Span] = []
            for span in spans:
                need = len(span) + (head if not taken else 0)
                if size + need > limit and (taken or chunk):
                    if taken:
                        chunk.append((sidx, taken))
                    out.append((chunk, count))
                    chunk, taken, size, count = [], [], 0, 0
                    need = len(span) + head
                taken.append(span)
                size += need
                count += 1
            if taken:
                chunk.append((sidx, taken))
        if chunk:
            out.append((chunk, count))
        return out

    def layout_of(self, group: int) -> list[tuple[int, list[Span]]]:
        return self.groups.get(group, [])


def walk(buf: bytes, partitions: int | None) -> Layout:
    """Walk a request's wire bytes once. ``partitions``: group spans by the partition of their trace
    id's key among that many partitions; None: keep every span in group 0. Raises WireError."""
    layout = Layout()
    groups = layout.groups
    keys = layout.keys
    cache: dict[bytes, int] = {}
    view = memoryview(buf)  # span pieces are views: each is copied once, into its record
    end = len(buf)
    pos = 0
    try:
        while pos < end:
            number, wire_type, rs_start, rs_end = read_field(buf, pos, end)
            pos = rs_end
            if number != 1 or wire_type != 2:
                continue  # not resource_spans: ExportTraceServiceRequest has no other field
            rs_index = len(layout.rs_heads)
            rs_head: list[bytes] = []
            p = rs_start
            while p < rs_end:
                field_start = p
                number, wire_type, ss_start, ss_end = read_field(buf, p, rs_end)
                p = ss_end
                if number != 2 or wire_type != 2:
                    rs_head.append(buf[field_start:ss_end])
                    continue
                sidx = len(layout.ss_heads)
                ss_head: list[bytes] = []
                local: dict[int, list[Span]] = {}
                q = ss_start
                while q < ss_end:
                    span_at = q
                    number, wire_type, body, q = read_field(buf, q, ss_end)
                    if number != 2 or wire_type != 2:  # not a span: a field of the ScopeSpans
                        ss_head.append(buf[span_at:q])
                        continue
                    piece = view[span_at:q]
                    if partitions is None:
                        target = 0
                    else:
                        tid = span_trace_id(buf, body, q)
                        target = cache.get(tid, -1)
                        if target < 0:
                            key = tid.hex().encode()
                            target = partition_for_key(key, partitions)
                            cache[tid] = target
                            keys.setdefault(target, key)
                    spans = local.get(target)
                    if spans is None:
                        local[target] = [piece]
                    else:
                        spans.append(piece)
                layout.ss_heads.append(b"".join(ss_head))
                layout.ss_rs.append(rs_index)
                for target, spans in local.items():
                    g = groups.get(target)
                    if g is None:
                        groups[target] = [(sidx, spans)]
                    else:
                        g.append((sidx, spans))
            layout.rs_heads.append(b"".join(rs_head))
    except IndexError:
        raise WireError("message truncated") from None
    return layout


class Record:
    """One Kafka record to produce: target partition (None: let the client pick), key, value; ``raw`` is
    the value as an ``ExportTraceServiceRequest`` before encoding (the same object for otlp_proto)."""

    __slots__ = ("key", "partition", "raw", "spans", "value")

    def __init__(self, partition: int | None, key: bytes | None, value: bytes, spans: int, raw: bytes) -> None:
        self.partition = partition
        self.key = key
        self.value = value
        self.spans = spans
        self.raw = raw


Encoder = Callable[[bytes], bytes]


def identity(payload: bytes) -> bytes:
    return payload


def build_records(layout: Layout, *, partitioned: bool, limit: int, encode: Encoder = identity) -> list[Record]:
    """Records for every group of ``layout``, each value (after ``encode``) within ``limit`` bytes
    where a single span allows it."""
    records: list[Record] = []
    for group in layout.groups:
        partition = group if partitioned else None
        key = layout.keys.get(group) if partitioned else None
        records.extend(_records_for(layout, group, partition, key, limit, encode, layout.chunks(group, limit)))
    return records


def _records_for(layout: Layout, group: int, partition: int | None, key: bytes | None, limit: int,
                 encode: Encoder, chunks: list[tuple[list[tuple[int, list[Span]]], int]]) -> list[Record]:
    out: list[Record] = []
    for chunk, count in chunks:
        raw = layout.encode(chunk)
        value = encode(raw)
        if len(value) > limit and count > 1:
            # The encoding grew the chunk past the limit (JSON): cut it in halves until it fits.
            out.extend(_records_for(layout, group, partition, key, limit, encode, split_chunk(chunk, count)))
            continue
        out.append(Record(partition, key, value, count, raw))
    return out


def split_chunk(chunk: list[tuple[int, list[Span]]], count: int) -> list[tuple[list[tuple[int, list[Span]]], int]]:
    """Cut a chunk of ``count`` spans (> 1) into two of about half as many spans."""
    half = count // 2
    first: list[tuple[int, list[Span]]] = []
    second: list[tuple[int, list[Span]]] = []
    seen = 0
    for sidx, spans in chunk:
        if seen >= half:
            second.append((sidx, spans))
        elif seen + len(spans) <= half:
            first.append((sidx, spans))
        else:
            cut = half - seen
            first.append((sidx, spans[:cut]))
            second.append((sidx, spans[cut:]))
        seen += len(spans)
    return [(first, half), (second, count - half)]


def split_record(record: Record, encode: Encoder = identity) -> list[Record]:
    """Two records with about half the spans each (the broker refused the record as too large)."""
    assert record.spans > 1
    layout = walk(record.raw, None)
    chunk = layout.layout_of(0)
    count = sum(len(spans) for _, spans in chunk)
    limit = max(len(record.value) - 1, 1)  # the halves fit; no further cutting
    return _records_for(layout, 0, record.partition, record.key, limit, encode, split_chunk(chunk, count))


def records_by_trace(split: list[ScopeChunk], partitions: int, limit: int,
                     encode: Encoder = identity) -> list[Record]:
    """Records for spans already grouped by trace (a batch's :meth:`~collector.model.SpanBatch.split`):
    each trace goes to the partition its key hashes to, and all traces of a partition share records.

    A partition whose spans exceed ``limit`` is cut into records of whole traces, from the split's own
    entries (a trace larger than a record is cut between its spans), so that every span's bytes are copied
    once, into the record that carries it."""
    ids = list(dict.fromkeys(tid for chunk in split for tid in chunk.by_trace))
    targets = dict(zip(ids, trace_partitions(ids, partitions), strict=True))
    keys: dict[int, bytes] = {}
    counts: dict[int, int] = {}
    # partition -> (resource fields, scope fields) -> framed span entries
    parts: dict[int, dict[tuple[bytes, bytes], list[bytes]]] = {}
    for tid, target in targets.items():
        if target not in keys:
            keys[target] = tid.hex().encode()
            counts[target] = 0
            parts[target] = {}
    for chunk in split:
        origin = (chunk.resource_fields, chunk.scope_fields)
        for tid, ts in chunk.by_trace.items():
            target = targets[tid]
            counts[target] += ts.count
            by_origin = parts[target]
            entries = by_origin.get(origin)
            if entries is None:
                by_origin[origin] = list(ts.entries)
            else:
                entries.extend(ts.entries)
    records: list[Record] = []
    traces: dict[int, dict[tuple[bytes, bytes], list[TraceSpans]]] | None = None
    for target, by_origin in parts.items():
        key = keys[target]
        count = counts[target]
        raw = build_request_within(((rf, sf, entries) for (rf, sf), entries in by_origin.items()),
                                   limit if count > 1 else -1)
        if raw is not None:
            cuts = [(raw, count)]
        else:  # larger than a record: cut between traces
            if traces is None:
                traces = _traces_by_origin(split, targets)
            cuts = [(build_request((rf, sf, entries) for (rf, sf), entries in groups.items()), n)
                    for groups, n in _cut(traces[target], limit)]
        for raw, n in cuts:
            value = encode(raw)
            if len(value) <= limit or n <= 1:
                records.append(Record(target, key, value, n, raw))
                continue
            # The encoding grew the record past the limit (JSON): cut it in halves until it fits.
            for rec in build_records(walk(raw, None), partitioned=False, limit=limit, encode=encode):
                rec.partition, rec.key = target, key
                records.append(rec)
    return records


def _traces_by_origin(split: list[ScopeChunk],
                      targets: dict[bytes, int]) -> dict[int, dict[tuple[bytes, bytes], list[TraceSpans]]]:
    """partition -> (resource fields, scope fields) -> the traces there, in the split's order."""
    out: dict[int, dict[tuple[bytes, bytes], list[TraceSpans]]] = {}
    for chunk in split:
        origin = (chunk.resource_fields, chunk.scope_fields)
        for tid, ts in chunk.by_trace.items():
            by_origin = out.get(targets[tid])
            if by_origin is None:
                by_origin = out[targets[tid]] = {}
            traces = by_origin.get(origin)
            if traces is None:
                by_origin[origin] = [ts]
            else:
                traces.append(ts)
    return out


Groups = dict[tuple[bytes, bytes], list[Span]]


def _cut(by_origin: dict[tuple[bytes, bytes], list[TraceSpans]], limit: int) -> Iterator[tuple[Groups, int]]:
    """The traces of ``by_origin`` as (origin -> span entries, span count) groups whose request stays within
    ``limit`` bytes: whole traces in order, a trace larger than ``limit`` cut between its spans (a span
    larger than ``limit`` alone)."""
    groups: Groups = {}
    size = 0
    count = 0
    for origin, traces in by_origin.items():
        head = len(origin[0]) + len(origin[1]) + 2 * _FRAME
        for ts in traces:
            body = sum(map(len, ts.entries))
            need = body + (0 if origin in groups else head)
            if size + need > limit and count:
                yield groups, count
                groups, size, count = {}, 0, 0
                need = body + head
            if need <= limit:
                entries = groups.get(origin)
                if entries is None:
                    groups[origin] = list(ts.entries)
                else:
                    entries.extend(ts.entries)
                size += need
                count += ts.count
                continue
            for span in _framed_spans(ts.entries):  # a trace larger than a record
                need = len(span) + (0 if origin in groups else head)
                if size + need > limit and count:
                    yield groups, count
                    groups, size, count = {}, 0, 0
                    need = len(span) + head
                entries = groups.get(origin)
                if entries is None:
                    groups[origin] = [span]
                else:
                    entries.append(span)
                size += need
                count += 1
    if count:
        yield groups, count


def _framed_spans(entries: list[bytes]) -> Iterator[memoryview]:
    """Each framed span (``spans`` field: tag, length, span) of ``entries``, as a view of its entry."""
    for entry in entries:
        view = memoryview(entry)
        end = len(entry)
        pos = 0
        while pos < end:
            _, _, _, stop = read_field(entry, pos, end)
            yield view[pos:stop]
            pos = stop


__all__ = [
    "RECORD_OVERHEAD",
    "Layout",
    "Record",
    "build_records",
    "records_by_trace",
    "split_record",
    "walk",
]
