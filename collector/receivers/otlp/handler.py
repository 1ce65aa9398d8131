"""What both transports do with a decoded request: check ids, pass the batch on, count, answer.

Errors from the next consumer are raised to the transport, which maps them to its status codes
(:func:`retry_delay` gives the back-off hint for a retriable refusal).
"""

from __future__ import annotations

import math
from typing import Literal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.auth import Denied
from collector.component import Settings
from collector.consumer import TracesConsumer
from collector.errors import ConsumerError
from collector.model import SpanBatch
from collector.receivers.otlp.http_guard import Throttled
from collector.validate import remove_invalid_spans
from collector.wire import ScopeChunk, WireError, split_by_trace

Transport = Literal["grpc", "http"]

DEFAULT_RETRY_DELAY = 1.0


def retry_delay(error: ConsumerError) -> float:
    """Seconds a client should wait before retrying a retriable refusal (default 1 s)."""
    delay = error.retry_after
    if delay is None or not math.isfinite(delay) or delay < 0:
        return DEFAULT_RETRY_DELAY
    return delay


class ExportHandler:
    """Shared by the gRPC and HTTP servers of one receiver."""

    __slots__ = ("_accepted", "_auth_failures", "_auth_log", "_next", "_receiver", "_refused", "_split_options")

    def __init__(self, settings: Settings, next_consumer: TracesConsumer) -> None:
        self._next = next_consumer
        self._split_options = settings.split_options
        receiver = str(settings.id)
        telemetry = settings.telemetry
        self._accepted = {
            t: telemetry.receiver_accepted_spans.labels(receiver=receiver, transport=t) for t in ("grpc", "http")
        }
        self._refused = {
            t: telemetry.receiver_refused_spans.labels(receiver=receiver, transport=t) for t in ("grpc", "http")
        }
        self._receiver = receiver
        self._auth_failures = telemetry.counter(
            "tracetriage_receiver_auth_failures",
            "Requests refused by the receiver's authenticator (HTTP 401 / gRPC UNAUTHENTICATED), by reason: "
            "missing_credentials, malformed_credentials, invalid_credentials.", ("receiver", "transport", "reason"))
        self._auth_log = Throttled(settings.logger, f"{receiver}: requests refused by the authenticator")

    def auth_denied(self, transport: Transport, denied: Denied, peer: str) -> None:
        """Count (and, at most every few seconds, log) a request refused by the authenticator. Neither names
        the credentials that were sent."""
        self._auth_failures.labels(receiver=self._receiver, transport=transport, reason=denied.reason).inc()
        self._auth_log.note(f"{transport} from {peer}: {denied.message}")

    async def export(
        self, request: ExportTraceServiceRequest | None, payload: bytes | None, transport: Transport
    ) -> ExportTraceServiceResponse:
        """Pass the valid spans of ``request`` on. ``payload`` is its wire form, if the caller has it.

        A caller that the compiled check (:func:`collector.wire.certainly_valid`) has told ``payload`` is
        valid passes ``request`` as None: the message is then decoded only if the wire walk cannot take the
        request. Bytes that protobuf had to decode are passed as the message, not as bytes: the walk then
        reads the message's canonical serialization, so it sees what protobuf read (a span that repeats an
        id field has protobuf's last value, not the walk's first).
        Dropping the message early matters: a request's message is a few times its wire size, and
        keeping it alive while the spans move on costs page faults and cache misses on every request.

        Raises whatever the next consumer raises (after counting the spans as refused).
        """
        response = ExportTraceServiceResponse()
        # The ids are checked by the one wire walk that also groups the spans by trace (handed on with
        # the batch, so no later stage walks them again). A request with an invalid id, or one the walk
        # does not take (not canonically encoded), goes through protobuf instead.
        split: list[ScopeChunk] | None = None
        if payload is None:
            if request is None:
                raise ValueError("export needs a request message or its wire bytes")
            payload = request.SerializeToString()
        try:
            # Every payload here is one that certainly_valid accepted or that protobuf serialized.
            split = split_by_trace(payload, self._split_options, ids_once=True)
            count = sum(c.spans for c in split)
        except WireError:
            split = None
            if request is None:
                request = ExportTraceServiceRequest.FromString(payload)
            check = remove_invalid_spans(request)
            if check.rejected:
                response.partial_success.rejected_spans = check.rejected
                response.partial_success.error_message = check.message
                self._refused[transport].inc(check.rejected)
            payload = None  # re-serialized (canonically) on demand
            count = check.accepted
        if count == 0:
            return response
        # With the split, the message is not needed any more: later stages work from the bytes.
        batch = SpanBatch(payload=payload, request=None if split is not None else request, span_count=count,
                          split=split, split_options=self._split_options)
        request = None
        try:
            await self._next.consume_traces(batch)
        except Exception:
            self._refused[transport].inc(count)
            raise
        self._accepted[transport].inc(count)
        return response
