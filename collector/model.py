"""The span data model: what moves between stages (:class:`SpanBatch`) and the whole traces that trace-level
stages work on (:class:`Trace`). Both keep spans as their wire bytes; :mod:`collector.wire` reads and
writes those bytes.

A :class:`SpanBatch` is a batch of spans as one OTLP ``ExportTraceServiceRequest``. It keeps the request's
wire bytes and decodes them only when a stage asks for the message. Batches merge by concatenating wire
bytes (``resource_spans`` is the only field of the request, so two serialized requests joined are one
valid request), and exporters send the bytes they were given.

A :class:`Trace` keeps its spans as wire bytes, grouped by origin (the resource and instrumentation scope
they were sent with): each group is one ``bytearray`` of framed ``ScopeSpans.spans`` entries (tag
``0x12``, length, span bytes), exactly as they stood in the request. Nothing is decoded on the way in.
A stage that needs the spans calls :meth:`Trace.groups`, which decodes each group with one protobuf call
into a mutable ``ScopeSpans`` message; a stage that changes spans calls :meth:`Trace.mark_modified` so
the trace is re-encoded from the messages when it leaves the buffer.

Trace-level stages (``tail_sampling``, ``root_cause``, ``alert_routing``) implement
:class:`collector.component.TraceStage`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from collector.wire import (
    ERROR_CODE,
    ScopeChunk,
    SplitOptions,
    build_request,
    entries_containing,
    entry_span,
    span_entries,
    split_by_trace,
)

_SPLIT_OPTIONS = SplitOptions()


def count_spans(request: ExportTraceServiceRequest) -> int:
    """Number of spans in a request, touching only the repeated containers, never a span."""
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


class Ack:
    """Tells the source of some data (a Kafka partition's records) when every part of it is done.

    Reference counted: each holder of the data (a batch, a buffered trace) holds one reference and
    releases it when the data is delivered or given up for good. When the count falls to zero,
    ``on_done`` runs once. Sources that do not need to know (OTLP receivers) attach no Ack.
    """

    __slots__ = ("_on_done", "_refs")

    def __init__(self, on_done: Callable[[], None], refs: int = 1) -> None:
        self._on_done: Callable[[], None] | None = on_done
        self._refs = refs

    def retain(self, n: int = 1) -> None:
        if self._on_done is None:
            raise RuntimeError("Ack retained after it was done")
        self._refs += n

    def release(self) -> None:
        self._refs -= 1
        if self._refs == 0 and self._on_done is not None:
            callback, self._on_done = self._on_done, None
            callback()

    @property
    def done(self) -> bool:
        return self._on_done is None


def release_all(acks: list[Ack] | None) -> None:
    """Release each of ``acks`` (the references a batch or a buffered trace held)."""
    if acks:
        for a in acks:
            a.release()


class SpanBatch:
    """A batch of spans. Owned by one stage at a time: once passed on it belongs to the next stage.

    ``acks`` are the completion references the batch holds (see :class:`Ack`). The rule for every
    stage: a batch passed on keeps its acks; a stage that merges batches merges their acks (``concat``);
    one that splits or copies a batch retains them once more for each extra part (``copy``,
    ``with_acks_of``); and whoever ends a batch's life, by delivering it or dropping it for good, calls
    :meth:`release`. A batch refused with a retriable error stays the caller's, acks and all.

    ``split_options`` say how :meth:`split` splits the batch when no one has yet: a receiver that leaves
    the split to the stages that need it (Kafka's) passes its own, and merged, copied and cut batches keep
    them.
    """

    __slots__ = ("_parts", "_payload", "_request", "_split", "_split_options", "acks", "span_count")

    def __init__(
        self,
        *,
        payload: bytes | None = None,
        request: ExportTraceServiceRequest | None = None,
        span_count: int | None = None,
        split: list[ScopeChunk] | None = None,
        split_options: SplitOptions = _SPLIT_OPTIONS,
    ) -> None:
        if payload is None and request is None and split is None:
            raise ValueError("SpanBatch needs payload bytes, a request message or split spans")
        self._payload = payload
        self._request = request
        self._split = split
        self._split_options = split_options
        self._parts: list[bytes] | None = None  # wire forms of merged batches, joined when first asked for
        self.acks: list[Ack] | None = None
        if span_count is None:
            span_count = count_spans(self.request)
        self.span_count = span_count

    @classmethod
    def from_request(cls, request: ExportTraceServiceRequest, payload: bytes | None = None) -> SpanBatch:
        """Wrap a decoded request; ``payload`` is its wire form when the caller still has it unchanged."""
        return cls(payload=payload, request=request)

    @classmethod
    def from_bytes(cls, payload: bytes, span_count: int | None = None,
                   split_options: SplitOptions = _SPLIT_OPTIONS) -> SpanBatch:
        """Wrap wire bytes (already validated by the caller). Decodes once if the count is unknown."""
        return cls(payload=payload, span_count=span_count, split_options=split_options)

    @classmethod
    def concat(cls, batches: Iterable[SpanBatch]) -> SpanBatch:
        """Merge batches by joining their wire bytes: no span is decoded or copied one by one."""
        parts = list(batches)
        if len(parts) == 1:
            return parts[0]
        count = sum(b.span_count for b in parts)
        options = parts[0]._split_options
        if all(b._split is not None for b in parts):
            # Grouped by trace already: a consumer that sends by trace never needs the joined bytes.
            merged = cls(split=[c for b in parts for c in b._split or ()], span_count=count, split_options=options)
            if all(b._payload is not None or b._parts is not None for b in parts):
                merged._parts = [p for b in parts for p in (b._parts or [b._payload or b""])]
        else:
            merged = cls(payload=b"".join(b.to_bytes() for b in parts), span_count=count, split_options=options)
        acks = [a for b in parts if b.acks for a in b.acks]
        if acks:
            merged.acks = acks
        return merged

    @property
    def request(self) -> ExportTraceServiceRequest:
        """The decoded request, for reading. Call :meth:`mutable_request` before changing it."""
        if self._request is None:
            self._request = ExportTraceServiceRequest.FromString(self.to_bytes())
        return self._request

    @property
    def split_options(self) -> SplitOptions:
        """How :meth:`split` splits this batch (what it works out about errors)."""
        return self._split_options

    def split(self) -> list[ScopeChunk]:
        """The spans grouped by resource, scope and trace id, as wire bytes (:func:`collector.wire.split_by_trace`
        with :attr:`split_options`; computed once, or handed over by the receiver that already walked the
        request).

        Raises ``WireError`` (``InvalidSpanIds`` for a span with invalid ids)."""
        if self._split is None:
            self._split = split_by_trace(self.to_bytes(), self._split_options)
        return self._split

    def mutable_request(self) -> ExportTraceServiceRequest:
        """The decoded request, for changing: the cached wire bytes are dropped and rebuilt on demand.

        A stage that changes spans must also call :meth:`recount` if it added or removed spans.
        """
        request = self.request
        self._payload = None
        self._parts = None
        self._split = None
        return request

    def recount(self) -> None:
        self.span_count = count_spans(self.request)

    def to_bytes(self) -> bytes:
        """The wire form of the batch (cached; serialized once if a stage changed the message)."""
        if self._payload is None:
            if self._parts is not None:
                self._payload = b"".join(self._parts)
                self._parts = None
            elif self._request is not None:
                self._payload = self._request.SerializeToString()
            else:
                assert self._split is not None
                self._payload = build_request(
                    (c.resource_fields, c.scope_fields, [e for ts in c.by_trace.values() for e in ts.entries])
                    for c in self._split
                )
        return self._payload

    @property
    def byte_size(self) -> int:
        return len(self.to_bytes())

    def copy(self) -> SpanBatch:
        """An independent copy, for fan-out to a stage that mutates. It holds its own references to the
        acks, so each copy must be released."""
        return SpanBatch(payload=self.to_bytes(), span_count=self.span_count, split=self._split,
                         split_options=self._split_options).with_acks_of(self)

    def view(self) -> SpanBatch:
        """Another batch object over the same (read-only) bytes and message, with its own ack references."""
        other = SpanBatch(payload=self._payload, request=self._request, span_count=self.span_count,
                          split=self._split, split_options=self._split_options)
        other._parts = self._parts
        return other.with_acks_of(self)

    def with_acks_of(self, other: SpanBatch) -> SpanBatch:
        """Give this batch (a part or copy of ``other``) its own reference to each of ``other``'s acks."""
        if other.acks:
            for a in other.acks:
                a.retain()
            self.acks = (self.acks or []) + list(other.acks)
        return self

    def release(self) -> None:
        """The batch is done: delivered, or dropped for good. Releases its acks (once)."""
        acks, self.acks = self.acks, None
        release_all(acks)

    def __repr__(self) -> str:
        return f"SpanBatch(spans={self.span_count})"


class Origin:
    """The resource and scope a group of spans came with, as framed wire fields (interned, shared)."""

    __slots__ = ("_resource", "_service", "_string_attributes", "resource_fields", "scope_fields")

    def __init__(self, resource_fields: bytes, scope_fields: bytes) -> None:
        # resource_fields: the framed `resource` and `schema_url` fields of the ResourceSpans;
        # scope_fields: the framed `scope` and `schema_url` fields of the ScopeSpans.
        self.resource_fields = resource_fields
        self.scope_fields = scope_fields
        self._resource: Resource | None = None
        self._service: str | None = None
        self._string_attributes: Mapping[str, str] | None = None

    def resource(self) -> Resource:
        """The decoded resource (shared by every trace with this origin: read it, don't change it)."""
        if self._resource is None:
            self._resource = ResourceSpans.FromString(self.resource_fields).resource
        return self._resource

    def string_attributes(self) -> Mapping[str, str]:
        """The resource's string-valued attributes, read-only (computed once per origin)."""
        if self._string_attributes is None:
            self._string_attributes = MappingProxyType({
                kv.key: kv.value.string_value for kv in self.resource().attributes
                if kv.value.WhichOneof("value") == "string_value"
            })
        return self._string_attributes

    @property
    def service_name(self) -> str:
        """``service.name`` of the resource ("" when absent)."""
        if self._service is None:
            self._service = ""
            for kv in self.resource().attributes:
                if kv.key == "service.name":
                    self._service = kv.value.string_value
                    break
        return self._service


class SpanGroup:
    """Decoded spans of one trace that share an origin. ``scope_spans.spans`` may be changed in place
    (then call ``Trace.mark_modified``)."""

    __slots__ = ("origin", "scope_spans")

    def __init__(self, origin: Origin, scope_spans: ScopeSpans) -> None:
        self.origin = origin
        self.scope_spans = scope_spans

    @property
    def spans(self) -> Sequence[Span]:
        spans: Sequence[Span] = self.scope_spans.spans
        return spans

    @property
    def resource(self) -> Resource:
        return self.origin.resource()

    @property
    def service_name(self) -> str:
        return self.origin.service_name


class Trace:
    """One trace: framed span bytes per origin, plus what stages learn about it in ``notes``."""

    __slots__ = (
        "_chunk", "_chunks", "_counts", "_decoded", "_modified", "_notes", "_origin", "acks", "arrival",
        "decision_at", "end", "error_status", "maybe_error", "root_seen", "span_count", "start", "trace_id",
    )

    def __init__(self, trace_id: bytes, arrival: float, decision_at: float = 0.0, origin: Origin | None = None,
                 framed: bytes = b"", spans: int = 0, start: int = -1, end: int = 0,
                 maybe_error: bool = False) -> None:
        """A trace, empty or (the trace buffer's hot path) with its first spans from ``origin`` at once, as
        :meth:`add` would file them."""
        self.trace_id = trace_id
        self.arrival = arrival  # monotonic time the first span arrived
        self.decision_at = decision_at  # monotonic time the buffer hands it on
        # Framed span entries per origin (:attr:`chunks`): the bytes as they arrived, made a bytearray once more
        # arrive. While the trace waits for its decision, the spans of its first origin are kept in two slots
        # (most traces come from one service: a dict each would add about 200 bytes a trace); the dict is made
        # when a second origin arrives or a stage asks for ``chunks``.
        self._origin = origin
        self._chunk: bytes | bytearray = framed
        self._chunks: dict[Origin, bytes | bytearray] | None = None if origin is not None else {}
        self._counts: dict[Origin, int] | None = None  # spans per origin, kept once there are two origins
        self.span_count = spans
        self.root_seen = False
        self.start = start  # earliest span start (unix ns; 0 if some span has none); -1: no spans yet
        self.end = end  # latest span end (unix ns)
        self.maybe_error = maybe_error  # False: no span has an ERROR status or an ``error`` attribute = true
        # Exactly whether a span has status ERROR, once a stage has found out (None: not known); a stage
        # that reads statuses can use it instead of decoding the spans.
        self.error_status: bool | None = None
        self.acks: list[Ack] | None = None
        self._notes: dict[str, Any] | None = None
        self._decoded: list[SpanGroup] | None = None
        self._modified = False

    def note(self, key: str) -> Any:
        """``notes.get(key)``, without creating the notes of a trace that has none."""
        notes = self._notes
        return None if notes is None else notes.get(key)

    @property
    def notes(self) -> dict[str, Any]:
        """What stages learn about the trace, for the stages after them (created on first use)."""
        if self._notes is None:
            self._notes = {}
        return self._notes

    def add(self, origin: Origin, framed: bytes | memoryview, spans: int, start: int, end: int,
            maybe_error: bool = True) -> None:
        """Append framed span entries (as they stood in a ``ScopeSpans``) from ``origin``; ``start`` and
        ``end`` are the earliest start and latest end among them; ``maybe_error`` False promises that none
        has an ERROR status or an ``error`` attribute."""
        if maybe_error:
            self.maybe_error = True
            self.error_status = None
        if self.start < 0 or start < self.start:
            self.start = start
        if end > self.end:
            self.end = end
        if self._chunks is None and origin == self._origin:  # more spans of the first origin
            first = self._chunk
            if type(first) is bytes:
                first = self._chunk = bytearray(first)
            first += framed
            self.span_count += spans
            self._decoded = None
            return
        chunks = self.chunks
        chunk = chunks.get(origin)
        if chunk is None:
            if chunks:
                counts = self._counts
                if counts is None:
                    counts = self._counts = {next(iter(chunks)): self.span_count}
                counts[origin] = spans
            chunks[origin] = bytes(framed)
        else:
            if type(chunk) is bytes:
                chunk = chunks[origin] = bytearray(chunk)
            chunk += framed
            if self._counts is not None:
                self._counts[origin] += spans
        self.span_count += spans
        self._decoded = None

    @property
    def byte_size(self) -> int:
        """The framed span entries' bytes (what the trace holds on the wire; a stage's changes to decoded spans
        count once they are written back). Computed, not kept: an int a trace is 28 bytes."""
        if self._chunks is None:
            return len(self._chunk)
        return sum(map(len, self._chunks.values()))

    @property
    def chunks(self) -> dict[Origin, bytes | bytearray]:
        """Framed span entries per origin (the dict, made on first use)."""
        chunks = self._chunks
        if chunks is None:
            assert self._origin is not None
            chunks = self._chunks = {self._origin: self._chunk}
            self._origin = None
            self._chunk = b""
        return chunks

    @chunks.setter
    def chunks(self, chunks: dict[Origin, bytes | bytearray]) -> None:
        self._chunks = chunks
        self._origin = None
        self._chunk = b""

    def single_chunk(self) -> tuple[Origin, bytes | bytearray] | None:
        """(origin, framed span entries) of a trace whose spans all came from one origin and are not decoded
        (the wire bytes are what the trace holds); None otherwise. Makes no dict (see :attr:`chunks`)."""
        if self._decoded is not None:
            return None
        chunks = self._chunks
        if chunks is None:
            assert self._origin is not None
            return self._origin, self._chunk
        if len(chunks) == 1:
            return next(iter(chunks.items()))
        return None

    @staticmethod
    def singles(traces: Sequence[Trace]) -> tuple[list[Trace], list[Origin], list[bytes | bytearray], list[Trace]]:
        """The traces :meth:`single_chunk` answers without a dict (one origin, not decoded: most of a decision
        round's), their origins and their chunks; then the other traces (for stages that gather a round's wire
        bytes: one cheap test per trace, the rest maps in C)."""
        singles: list[Trace] = []
        others: list[Trace] = []
        for trace in traces:
            (singles if trace._chunks is None and trace._decoded is None else others).append(trace)
        return singles, list(map(_ORIGIN, singles)), list(map(_CHUNK, singles)), others

    def spans_of(self, origin: Origin) -> int:
        """How many of the trace's spans came from ``origin``."""
        if self._counts is None:
            if self._chunks is None:
                return self.span_count if origin == self._origin else 0
            return self.span_count if origin in self._chunks else 0
        return self._counts.get(origin, 0)

    def groups(self) -> list[SpanGroup]:
        """The spans, decoded (once per trace; one protobuf call per origin)."""
        if self._decoded is None:
            self._decoded = [SpanGroup(o, ScopeSpans.FromString(c)) for o, c in self.chunks.items()]
        return self._decoded

    def has_error_status(self) -> bool:
        """Whether a span has status ERROR, exactly: known (``error_status``), else found from the wire
        bytes, decoding only the spans that contain the bytes of an ERROR code (and remembered)."""
        known = self.error_status
        if known is not None:
            return known
        found = False
        if self.maybe_error:
            if self._decoded is not None:
                found = any(s.status.code == Status.STATUS_CODE_ERROR for _, s in self.iter_spans())
            else:
                found = any(self._error_status_in(bytes(chunk)) for chunk in self.chunks.values())
        self.error_status = found
        return found

    @staticmethod
    def _error_status_in(data: bytes) -> bool:
        if data.find(ERROR_CODE) < 0:  # (cheaper than ``not in``, which first tries the needle as an int)
            return False
        at = span_entries(data)
        if at is None:
            return any(s.status.code == Status.STATUS_CODE_ERROR for s in ScopeSpans.FromString(data).spans)
        return any(Span.FromString(entry_span(data, at, j)).status.code == Status.STATUS_CODE_ERROR
                   for j in entries_containing(data, at, ERROR_CODE))

    @property
    def decoded(self) -> bool:
        """:meth:`groups` has decoded the spans (and they are what the trace sends)."""
        return self._decoded is not None

    def replace_chunks(self, chunks: Mapping[Origin, bytes | bytearray], same_errors: bool = False) -> None:
        """Replace the framed span entries of some origins with changed ones holding the same spans, with
        the same statuses (a stage that edits the wire bytes of a few spans instead of decoding the
        trace). ``same_errors`` promises that no ``error`` attribute was added or changed either: what the
        wire walk found about errors still holds."""
        self._flush()  # changes made through groups() first: the new bytes replace those
        for origin, chunk in chunks.items():
            self.chunks[origin] = chunk
        self._decoded = None
        if not same_errors:
            self.maybe_error = True

    def replace_origins(self, new_origin: Callable[[Origin], Origin]) -> None:
        """Move each origin's spans to ``new_origin(origin)`` (the same resource with changed scope
        attributes, say); spans of two origins that map to one are joined."""
        self._flush()
        chunks: dict[Origin, bytes | bytearray] = {}
        counts: dict[Origin, int] = {}
        for origin, chunk in self.chunks.items():
            target = new_origin(origin)
            if target in chunks:
                joined = chunks[target]
                chunks[target] = (joined if isinstance(joined, bytearray) else bytearray(joined)) + chunk
            else:
                chunks[target] = chunk
            counts[target] = counts.get(target, 0) + self.spans_of(origin)
        self.chunks = chunks
        self._counts = counts if len(counts) > 1 else None
        if self._decoded is not None:
            if len(chunks) == len(self._decoded):
                for group in self._decoded:
                    group.origin = new_origin(group.origin)
            else:
                self._decoded = None

    def iter_spans(self) -> Iterator[tuple[SpanGroup, Span]]:
        for g in self.groups():
            for s in g.scope_spans.spans:
                yield g, s

    def mark_modified(self) -> None:
        """A stage changed span messages from :meth:`groups`: re-encode them when the trace leaves."""
        self._modified = True
        self.maybe_error = True  # what the wire walk found may no longer hold
        self.error_status = None

    def wire_chunks(self) -> Iterator[tuple[Origin, bytes | bytearray]]:
        """Framed span entries per origin, as they leave the buffer (re-encoded once after a change)."""
        self._flush()
        if self._chunks is None:
            assert self._origin is not None
            yield self._origin, self._chunk
        else:
            yield from self._chunks.items()

    def _flush(self) -> None:
        if self._modified and self._decoded is not None:
            self.chunks = {g.origin: g.scope_spans.SerializeToString() for g in self._decoded}
            self._modified = False

    def release(self) -> None:
        """The trace is done (sent on inside a batch, or dropped): release its acks (once)."""
        acks, self.acks = self.acks, None
        release_all(acks)

    def __repr__(self) -> str:
        return f"Trace({self.trace_id.hex()}, spans={self.span_count})"


_ORIGIN = attrgetter("_origin")
_CHUNK = attrgetter("_chunk")


def make_origin(resource: Resource, scope: InstrumentationScope | None = None, resource_schema_url: str = "",
                scope_schema_url: str = "") -> Origin:
    """An origin from decoded messages (for tests and tools; the buffer interns origins from wire bytes)."""
    rs = ResourceSpans(resource=resource, schema_url=resource_schema_url)
    ss = ScopeSpans(schema_url=scope_schema_url)
    if scope is not None:
        ss.scope.CopyFrom(scope)
    return Origin(rs.SerializeToString(), ss.SerializeToString())


def make_trace(groups: Sequence[tuple[Resource | Origin, Sequence[Span]]], arrival: float = 0.0) -> Trace:
    """A trace from decoded spans grouped by resource (for tests and tools). The trace id is the first span's."""
    first = next((spans[0] for _, spans in groups if spans), None)
    trace = Trace(first.trace_id if first is not None else b"\0" * 16, arrival)
    for res, spans in groups:
        origin = res if isinstance(res, Origin) else make_origin(res)
        framed = ScopeSpans(spans=spans).SerializeToString()
        if spans:
            trace.add(origin, framed, len(spans), min(s.start_time_unix_nano for s in spans),
                      max(s.end_time_unix_nano for s in spans))
        if any(not s.parent_span_id for s in spans):
            trace.root_seen = True
    return trace
