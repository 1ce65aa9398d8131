"""Send generated batches over OTLP: gRPC (``grpc.aio``, raw request bytes), HTTP protobuf or HTTP JSON
(``aiohttp``), with bounded concurrency, an optional span rate and retries that honour the far side's
hint (gRPC ``RetryInfo``, HTTP ``Retry-After``).

One producer task generates batches (a few milliseconds of CPU each, yielding between them) into a
bounded queue; ``concurrency`` workers export them. Retriable failures (gRPC UNAVAILABLE and the other
OTLP-retriable codes, HTTP 429/502/503/504, refused connections) are retried with jittered exponential
backoff until ``max_retry_time``; anything else fails the batch, which is counted.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import grpc
import grpc.aio
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.loadgen.generate import Batch, Generator
from collector.errors import ConsumerError, PermanentError
from collector.exporters.otlp import EXPORT_METHOD, error_from_rpc, grpc_target
from collector.exporters.otlphttp import parse_retry_after
from collector.otlpjson import decode_response, encode_request

__all__ = ["Exporter", "GrpcExporter", "HttpExporter", "SendOptions", "SendStats", "make_exporter", "send"]

WireProtocol = Literal["grpc", "http/protobuf", "http/json"]
PROTOCOLS: tuple[WireProtocol, ...] = ("grpc", "http/protobuf", "http/json")
DEFAULT_ENDPOINTS = {"grpc": "127.0.0.1:4317", "http/protobuf": "http://127.0.0.1:4318",
                     "http/json": "http://127.0.0.1:4318"}
RETRIABLE_HTTP = frozenset({429, 502, 503, 504})
MAX_RETRY_DELAY = 30.0


@dataclass(frozen=True)
class SendOptions:
    endpoint: str = ""                       # default per protocol (DEFAULT_ENDPOINTS)
    protocol: WireProtocol = "grpc"
    rate: float | None = None                # spans per second; None: as fast as possible
    count: int | None = None                 # traces; with duration, whichever comes first
    duration: float | None = None            # seconds
    concurrency: int = 4
    batch_spans: int = 500
    timeout: float = 10.0                    # per request
    max_retry_time: float = 30.0             # per batch, across retries (and never past duration + timeout)
    initial_backoff: float = 0.1
    headers: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ValueError naming the first bad option."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.count is None and self.duration is None:
            raise ValueError("give a count of traces or a duration: the load generator always stops")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration must be > 0 seconds, got {self.duration}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"rate must be > 0 spans/s, got {self.rate}")
        if not 1 <= self.concurrency <= 1024:
            raise ValueError(f"concurrency must be between 1 and 1024, got {self.concurrency}")
        if not 1 <= self.batch_spans <= 100_000:
            raise ValueError(f"batch_spans must be between 1 and 100000, got {self.batch_spans}")
        if self.timeout <= 0 or self.max_retry_time < 0:
            raise ValueError("timeout must be > 0 and max_retry_time >= 0")


@dataclass(slots=True)
class SendStats:
    """What happened so far; updated in place while sending (read it for progress)."""

    traces: int = 0              # in accepted requests
    spans: int = 0
    requests: int = 0
    payload_bytes: int = 0
    retries: int = 0
    failed_requests: int = 0     # given up (permanent error or retries exhausted)
    failed_spans: int = 0
    rejected_spans: int = 0      # accepted requests whose partial success rejected some spans
    generated_traces: int = 0
    generated_spans: int = 0
    last_error: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished if self.finished is not None else time.monotonic()) - self.started

    @property
    def span_rate(self) -> float:
        e = self.elapsed
        return self.spans / e if e > 0 else 0.0

    def to_dict(self) -> dict[str, float | int | str]:
        return {"traces": self.traces, "spans": self.spans, "requests": self.requests, "bytes": self.payload_bytes,
                "retries": self.retries, "failed_requests": self.failed_requests,
                "failed_spans": self.failed_spans, "rejected_spans": self.rejected_spans,
                "elapsed_s": round(self.elapsed, 3), "spans_per_s": round(self.span_rate, 1),
                "last_error": self.last_error}


class Exporter(Protocol):
    async def export(self, payload: bytes) -> int:
        """Send one serialized request; return the spans the far side rejected (partial success).
        Raise ConsumerError (``retriable`` says whether to try again)."""

    async def close(self) -> None: ...


class GrpcExporter:
    """``TraceService/Export`` over ``grpc.aio``; the request bytes go out as they are."""

    __slots__ = ("_call", "_channel", "_metadata", "_timeout")

    def __init__(self, endpoint: str, timeout: float = 10.0, headers: Mapping[str, str] | None = None) -> None:
        self._channel = grpc.aio.insecure_channel(grpc_target(endpoint))
        self._call = self._channel.unary_unary(EXPORT_METHOD, request_serializer=None,
                                               response_deserializer=ExportTraceServiceResponse.FromString)
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self._timeout = timeout

    async def export(self, payload: bytes) -> int:
        try:
            response = await self._call(payload, timeout=self._timeout, metadata=self._metadata or None)
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e) from None
        return int(response.partial_success.rejected_spans)

    async def close(self) -> None:
        await self._channel.close()


class HttpExporter:
    """OTLP/HTTP ``POST /v1/traces`` with a protobuf or JSON body."""

    __slots__ = ("_headers", "_json", "_session", "_timeout", "url")

    def __init__(self, endpoint: str, json_body: bool = False, timeout: float = 10.0,
                 headers: Mapping[str, str] | None = None) -> None:
        self.url = traces_url(endpoint)
        self._json = json_body
        self._headers = {**(headers or {}),
                         "Content-Type": "application/json" if json_body else "application/x-protobuf"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def export(self, payload: bytes) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        if self._json:
            payload = await asyncio.to_thread(_to_json, payload)
        try:
            async with self._session.post(self.url, data=payload, headers=self._headers) as resp:
                body = await resp.read()
                if resp.status == 200:
                    return _rejected(body, resp.headers.get("Content-Type", ""))
                text = f"HTTP {resp.status} from {self.url}"
                if resp.status in RETRIABLE_HTTP:
                    raise ConsumerError(text, retriable=True,
                                        retry_after=parse_retry_after(resp.headers.get("Retry-After")))
                raise PermanentError(f"{text}: {body[:200].decode('utf-8', 'replace')}")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ConsumerError(f"POST {self.url}: {type(e).__name__}: {e}", retriable=True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _to_json(payload: bytes) -> bytes:
    return encode_request(ExportTraceServiceRequest.FromString(payload))


def _rejected(body: bytes, content_type: str) -> int:
    if not body:
        return 0
    try:
        if content_type.startswith("application/json"):
            return int(decode_response(body).partial_success.rejected_spans)
        return int(ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans)
    except (DecodeError, ValueError):
        return 0


def traces_url(endpoint: str) -> str:
    """``host:4318`` or ``http://host:4318`` -> ``http://host:4318/v1/traces``; a URL with a path is kept."""
    text = endpoint.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint must be an http(s) URL or host:port, got {endpoint!r}")
    if parts.path in ("", "/"):
        text = text.rstrip("/") + "/v1/traces"
    return text


def make_exporter(options: SendOptions) -> Exporter:
    endpoint = options.endpoint or DEFAULT_ENDPOINTS[options.protocol]
    if options.protocol == "grpc":
        return GrpcExporter(endpoint, options.timeout, options.headers)
    return HttpExporter(endpoint, options.protocol == "http/json", options.timeout, options.headers)


async def send(generator: Generator, options: SendOptions, *, stats: SendStats | None = None,
               on_batch: Callable[[Batch], None] | None = None, exporter: Exporter | None = None) -> SendStats:
    """Generate and send until ``count`` traces or ``duration`` seconds; return the stats.

    ``on_batch`` sees every generated batch (e.g. to record its ground truth) before it is sent.
    """
    options.check()
    stats = stats if stats is not None else SendStats()
    own_exporter = exporter is None
    exp = exporter if exporter is not None else make_exporter(options)
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=2 * options.concurrency)
    stats.started = time.monotonic()
    try:
        async with asyncio.TaskGroup() as tg:
            stop_retrying = None
            if options.duration is not None:
                stop_retrying = stats.started + options.duration + options.timeout
            for _ in range(options.concurrency):
                tg.create_task(_worker(exp, queue, options, stats, stop_retrying))
            await _produce(generator, options, queue, stats, on_batch)
            for _ in range(options.concurrency):
                await queue.put(None)
    finally:
        stats.finished = time.monotonic()
        if own_exporter:
            await exp.close()
    return stats


async def _produce(generator: Generator, options: SendOptions, queue: asyncio.Queue[Batch | None],
                   stats: SendStats, on_batch: Callable[[Batch], None] | None) -> None:
    batch_spans = options.batch_spans
    if options.rate is not None:
        batch_spans = max(1, min(batch_spans, int(options.rate / 20)))  # at least ~20 requests a second
    start = time.monotonic()
    deadline = start + options.duration if options.duration is not None else None
    due = start
    for batch in generator.batches(batch_spans, options.count):
        stats.generated_traces += batch.traces
        stats.generated_spans += batch.spans
        if on_batch is not None:
            on_batch(batch)
        if options.rate is not None:
            delay = due - time.monotonic()
            if deadline is not None:
                delay = min(delay, deadline - time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
            due += batch.spans / options.rate
        await queue.put(batch)
        await asyncio.sleep(0)  # let the workers run between batches
        if deadline is not None and time.monotonic() >= deadline:
            break


async def _worker(exporter: Exporter, queue: asyncio.Queue[Batch | None], options: SendOptions,
                  stats: SendStats, stop_retrying: float | None) -> None:
    rng = random.Random()
    while True:
        batch = await queue.get()
        if batch is None:
            return
        payload = batch.payload
        give_up = time.monotonic() + options.max_retry_time
        if stop_retrying is not None:
            give_up = min(give_up, stop_retrying)
        backoff = options.initial_backoff
        while True:
            try:
                rejected = await exporter.export(payload)
            except ConsumerError as e:
                stats.last_error = str(e)
                wait = e.retry_after if e.retry_after is not None else backoff * (0.5 + rng.random())
                wait = min(wait, MAX_RETRY_DELAY)
                if not e.retriable or time.monotonic() + wait > give_up:
                    stats.failed_requests += 1
                    stats.failed_spans += batch.spans
                    break
                stats.retries += 1
                backoff = min(backoff * 2, 5.0)
                await asyncio.sleep(wait)
                continue
            stats.requests += 1
            stats.traces += batch.traces
            stats.spans += batch.spans
            stats.payload_bytes += len(payload)
            stats.rejected_spans += rejected
            break
