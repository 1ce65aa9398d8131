"""The unit that moves between stages: a batch of spans as one OTLP ``ExportTraceServiceRequest``.

A batch keeps the request's wire bytes and decodes them only when a stage asks for the message.
Batches merge by concatenating wire bytes (``resource_spans`` is the only field of the request, so two
serialized requests joined are one valid request), and exporters send the bytes they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

if TYPE_CHECKING:
    from collector.wire import ScopeChunk


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
    """

    __slots__ = ("_parts", "_payload", "_request", "_split", "acks", "span_count")

    def __init__(
        self,
        *,
        payload: bytes | None = None,
        request: ExportTraceServiceRequest | None = None,
        span_count: int | None = None,
        split: list[ScopeChunk] | None = None,
    ) -> None:
        if payload is None and request is None and split is None:
            raise ValueError("SpanBatch needs payload bytes, a request message or split spans")
        self._payload = payload
        self._request = request
        self._split = split
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
    def from_bytes(cls, payload: bytes, span_count: int | None = None) -> SpanBatch:
        """Wrap wire bytes (already validated by the caller). Decodes once if the count is unknown."""
        return cls(payload=payload, span_count=span_count)

    @classmethod
    def concat(cls, batches: Iterable[SpanBatch]) -> SpanBatch:
        """Merge batches by joining their wire bytes: no span is decoded or copied one by one."""
        parts = list(batches)
        if len(parts) == 1:
            return parts[0]
        count = sum(b.span_count for b in parts)
        if all(b._split is not None for b in parts):
            # Grouped by trace already: a consumer that sends by trace never needs the joined bytes.
            merged = cls(split=[c for b in parts for c in b._split or ()], span_count=count)
            if all(b._payload is not None or b._parts is not None for b in parts):
                merged._parts = [p for b in parts for p in (b._parts or [b._payload or b""])]
        else:
            merged = cls(payload=b"".join(b.to_bytes() for b in parts), span_count=count)
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

    def split(self) -> list[ScopeChunk]:
        """The spans grouped by resource, scope and trace id, as wire bytes (:func:`collector.wire.split_by_trace`;
        computed once, or handed over by the receiver that already walked the request).

        Raises ``WireError`` (``InvalidSpanIds`` for a span with invalid ids)."""
        if self._split is None:
            from collector.wire import split_by_trace

            self._split = split_by_trace(self.to_bytes())
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
                from collector.wire import build_request

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
        return SpanBatch(payload=self.to_bytes(), span_count=self.span_count, split=self._split).with_acks_of(self)

    def view(self) -> SpanBatch:
        """Another batch object over the same (read-only) bytes and message, with its own ack references."""
        other = SpanBatch(payload=self._payload, request=self._request, span_count=self.span_count,
                          split=self._split)
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
