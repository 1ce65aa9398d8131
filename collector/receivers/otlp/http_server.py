"""OTLP/HTTP on aiohttp: ``POST /v1/traces`` with protobuf or JSON bodies, gzip / deflate encoded.

The body is read from the raw stream and inflated incrementally with a bound, so the size limit
applies after decompression and a compression bomb costs at most ``max_request_body_size`` of memory.
Answers are in the request's encoding: ``ExportTraceServiceResponse`` on success, ``google.rpc.Status``
on error, with the status codes of the OTLP/HTTP spec.
"""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from functools import partial
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import otlpjson
from collector.auth import ServerAuthenticator
from collector.config.net import format_address, listen_address
from collector.errors import ConsumerError
from collector.receivers.otlp.config import HTTPConfig
from collector.receivers.otlp.cors import cors_middleware
from collector.receivers.otlp.handler import ExportHandler, retry_delay
from collector.receivers.otlp.http_guard import (
    ConnectionGuard,
    GuardCounters,
    GuardedSite,
    QuietServerLog,
    Throttled,
    auto_max_connections,
)
from collector.telemetry import Telemetry
from collector.tls import ReloadingSSLContext
from collector.wire import certainly_valid

Format = Literal["proto", "json"]
_CONTENT_TYPES: dict[str, Format] = {"application/x-protobuf": "proto", "application/json": "json"}
_MEDIA_TYPE = {"proto": "application/x-protobuf", "json": "application/json"}
_GRPC_CODE_FOR_HTTP = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    408: code_pb2.DEADLINE_EXCEEDED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}
_OTHER_SIGNAL_PATHS = {"/v1/metrics": "metrics", "/v1/logs": "logs", "/v1development/profiles": "profiles"}
_READ_CHUNK = 64 * 1024
_NO_IDLE_LIMIT = 365 * 24 * 3600.0  # aiohttp closes at once with 0: "no limit" is a year
OFF_LOOP_JSON_BYTES = 256 * 1024
"""JSON bodies larger than this are decoded in a worker thread, so that they cannot stall the event loop."""


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _request_format(request: web.BaseRequest) -> Format | None:
    return _CONTENT_TYPES.get(request.content_type.lower())


def status_response(
    status: int, message: str, fmt: Format | None, headers: dict[str, str] | None = None
) -> web.Response:
    """An error answer: ``google.rpc.Status`` in the request's encoding, else plain text."""
    if fmt is None:
        return web.Response(status=status, text=message + "\n", headers=headers)
    body = status_pb2.Status(code=_GRPC_CODE_FOR_HTTP.get(status, code_pb2.UNKNOWN), message=message)
    data = body.SerializeToString() if fmt == "proto" else otlpjson.encode_message(body)
    return web.Response(status=status, body=data, content_type=_MEDIA_TYPE[fmt], headers=headers)


class _Inflater:
    """Incremental, bounded decompression of a gzip / deflate body."""

    __slots__ = ("_decomp", "_encoding", "_limit", "parts", "size")

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._limit = limit
        self._decomp: zlib._Decompress | None = None
        self.parts: list[bytes] = []
        self.size = 0

    def _new(self, first: bytes) -> zlib._Decompress:
        if self._encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped per RFC 9110, but some clients send a raw deflate stream.
        zlib_wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        while data:
            d = self._decomp
            if d is None:
                d = self._decomp = self._new(data)
            try:
                out = d.decompress(data, self._limit - self.size + 1)
            except zlib.error as e:
                raise _HTTPError(400, f"invalid {self._encoding} body: {e}") from None
            if out:
                self.size += len(out)
                if self.size > self._limit:
                    raise _HTTPError(413, f"request body larger than {self._limit} bytes after decompression")
                self.parts.append(out)
            if d.eof:
                data = d.unused_data
                if data and self._encoding != "gzip":
                    raise _HTTPError(400, f"invalid {self._encoding} body: data after the end of the stream")
                self._decomp = None  # gzip: a further member may follow
            else:
                data = d.unconsumed_tail

    def finish(self) -> bytes:
        if self._decomp is not None:
            raise _HTTPError(400, f"invalid {self._encoding} body: truncated stream")
        return b"".join(self.parts)


class HTTPServer:
    """One aiohttp server bound to the configured endpoint. ``start()`` returns the bound port."""

    def __init__(self, config: HTTPConfig, handler: ExportHandler, logger: logging.Logger,
                 telemetry: Telemetry, receiver: str) -> None:
        self._config = config
        self._handler = handler
        self._logger = logger
        self._counters = _counters(telemetry, receiver)
        self._telemetry = telemetry
        self._receiver = receiver
        self._tls: ReloadingSSLContext | None = None
        self._read_timeout_log = Throttled(logger, f"otlp/http: request bodies cut after read_timeout "
                                                   f"({config.read_timeout:g}s)")
        self._limit = int(config.max_request_body_size)
        self._traces_path = config.traces_path
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _app(self, guard: ConnectionGuard, authenticator: ServerAuthenticator | None) -> web.Application:
        cors = self._config.cors
        middlewares = [guard.middleware()]
        if cors is not None and cors.allowed_origins:
            middlewares.append(cors_middleware(cors))  # outside auth: a browser's preflight carries no credentials
        elif cors is not None and cors.allowed_headers:
            self._logger.warning("otlp/http: cors lists allowed_headers but no allowed_origins, so it has no "
                                 "effect (as in the OTel Collector)")
        if authenticator is not None:
            middlewares.append(auth_middleware(authenticator, self._handler))
        app = web.Application(client_max_size=self._limit + 1, middlewares=middlewares)
        app.router.add_route("*", self._traces_path, self._traces)
        for path, signal in _OTHER_SIGNAL_PATHS.items():
            if path != self._traces_path:
                app.router.add_route("*", path, _other_signal(signal))
        return app

    async def start(self, grace: float, authenticator: ServerAuthenticator | None = None) -> int:
        """Bind and serve; with an ``authenticator`` every request's headers are checked first (401 and
        ``WWW-Authenticate`` when refused). Raises OSError / ssl errors / ValueError on failure (nothing left
        running)."""
        cfg = self._config
        host, port = listen_address(cfg.endpoint, "localhost:4318")
        tls = (ReloadingSSLContext(cfg.tls, f"receiver {self._receiver} (http)", self._logger, self._telemetry)
               if cfg.tls is not None else None)  # mutual TLS with client_ca_file; follows tls.reload_interval
        ssl_context = tls.context if tls is not None else None
        max_connections = cfg.max_connections or auto_max_connections()
        guard = ConnectionGuard(max_connections=max_connections, read_header_timeout=cfg.read_header_timeout,
                                counters=self._counters, logger=self._logger)
        runner = web.AppRunner(
            self._app(guard, authenticator),
            handle_signals=False,
            access_log=None,
            auto_decompress=False,  # we inflate ourselves, with a bound
            shutdown_timeout=grace,
            keepalive_timeout=cfg.idle_timeout or _NO_IDLE_LIMIT,  # also covers a connection that sends nothing
            logger=QuietServerLog(self._logger, self._counters.malformed),
        )
        await runner.setup()
        try:
            site = GuardedSite(runner, host, port, guard=guard, ssl_context=ssl_context,
                               ssl_handshake_timeout=cfg.read_header_timeout or None)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if tls is not None:
            self._tls = tls
            tls.start()
        self.port = int(runner.addresses[0][1])
        self._logger.info("Starting HTTP server on %s (endpoint %s%s, traces at %s, max_connections %d)",
                          format_address(host, self.port), cfg.endpoint, ", TLS" if ssl_context is not None else "",
                          self._traces_path, max_connections)
        return self.port

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (up to the grace given at start), close."""
        runner, self._runner = self._runner, None
        tls, self._tls = self._tls, None
        if tls is not None:
            await tls.stop()
        if runner is not None:
            await runner.cleanup()

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._limit
        too_large = f"request body larger than {limit} bytes"
        if request.content_length is not None and request.content_length > limit:
            raise _HTTPError(413, too_large)
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        inflater: _Inflater | None = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            inflater = _Inflater("gzip" if encoding == "x-gzip" else encoding, limit)
        elif encoding not in ("", "identity"):
            raise _HTTPError(
                400, f"unsupported Content-Encoding {encoding!r} (supported: gzip, deflate, identity)"
            )
        parts: list[bytes] = []
        raw = 0
        while chunk := await request.content.readany():
            raw += len(chunk)
            if raw > limit:
                raise _HTTPError(413, too_large)
            if inflater is None:
                parts.append(chunk)
            else:
                inflater.feed(chunk)
        if inflater is None:
            return b"".join(parts)
        return inflater.finish() if raw else b""

    async def _traces(self, request: web.Request) -> web.StreamResponse:
        fmt = _request_format(request)
        if request.method != "POST":
            return status_response(
                405, f"method {request.method} not allowed on {request.path}, use POST", fmt, {"Allow": "POST"}
            )
        if fmt is None:
            return status_response(
                415,
                f"unsupported Content-Type {request.content_type!r}, "
                "use application/x-protobuf or application/json",
                None,
            )
        read_timeout = self._config.read_timeout
        try:
            async with asyncio.timeout(read_timeout if read_timeout > 0 else None):
                body = await self._read_body(request)
        except _HTTPError as e:
            return status_response(e.status, e.message, fmt)
        except TimeoutError:
            self._counters.timed_out("read").inc()
            self._read_timeout_log.note(str(request.remote))
            request.content.feed_eof()  # no lingering read of the rest: the connection closes after the answer
            response = status_response(408, f"request body not received within {read_timeout:g}s", fmt)
            response.force_close()
            return response
        try:
            if fmt == "json" and len(body) > OFF_LOOP_JSON_BYTES:
                payload = await asyncio.to_thread(_decode, body, fmt)
            else:
                payload = _decode(body, fmt)
        except _HTTPError as e:
            return status_response(e.status, e.message, fmt)
        try:  # (the request's wire bytes, validated: the handler works from them)
            response = await self._handler.export(None, payload, "http")
        except ConsumerError as e:
            message = str(e) or type(e).__name__
            if e.retriable:
                seconds = max(1, math.ceil(retry_delay(e)))
                return status_response(503, message, fmt, {"Retry-After": str(seconds)})
            return status_response(400, message, fmt)
        except Exception:
            self._logger.exception("otlp/http: unexpected error passing spans on")
            return status_response(500, "internal error (logged by the collector)", fmt)  # no internals to clients
        data = response.SerializeToString() if fmt == "proto" else otlpjson.encode_response(response)
        return web.Response(status=200, body=data, content_type=_MEDIA_TYPE[fmt])


def _decode(body: bytes, fmt: Format) -> bytes:
    """The request's valid protobuf wire bytes: the body when the compiled check is certain of it, else as
    protobuf reads it (decoded and encoded again: canonical, so a repeated id field counts once, as protobuf
    counts it); JSON encoded as protobuf."""
    if fmt == "proto":
        try:
            if certainly_valid(body):
                return body
            request_bytes: bytes = ExportTraceServiceRequest.FromString(body).SerializeToString()
            return request_bytes
        except DecodeError as e:
            raise _HTTPError(400, f"cannot decode protobuf ExportTraceServiceRequest: {e}") from None
    try:
        return otlpjson.request_bytes(body)
    except ValueError as e:
        raise _HTTPError(400, f"cannot decode JSON ExportTraceServiceRequest: {e}") from None


def _memo_entries(kind: str, which: int) -> float:
    return otlpjson.memo_entries()[kind][which]


def _counters(telemetry: Telemetry, receiver: str) -> GuardCounters:
    labels = ("receiver",)
    refused = telemetry.counter("tracetriage_receiver_http_connections_refused",
                                "Connections refused because the listener had max_connections open.", labels)
    timed_out = telemetry.counter("tracetriage_receiver_http_timeouts",
                                  "Connections or requests cut by read_header_timeout (timeout=read_header) or "
                                  "read_timeout (timeout=read).", ("receiver", "timeout"))
    malformed = telemetry.counter("tracetriage_receiver_http_malformed_requests",
                                  "Requests that were not valid HTTP/1.1 (answered 400, connection closed).", labels)
    open_connections = telemetry.gauge("tracetriage_receiver_http_open_connections",
                                       "Connections open on the OTLP/HTTP listener.", labels)
    entries = telemetry.gauge("tracetriage_otlpjson_memo_entries",
                              "Entries held by the OTLP/JSON decoder's memos (process-wide), by memo.", ("memo",))
    capacity = telemetry.gauge("tracetriage_otlpjson_memo_capacity",
                               "Most entries the OTLP/JSON decoder's memos hold (each starts again when full).",
                               ("memo",))
    for kind in otlpjson.memo_entries():
        entries.labels(memo=kind).set_function(partial(_memo_entries, kind, 0))
        capacity.labels(memo=kind).set_function(partial(_memo_entries, kind, 1))
    return GuardCounters(
        refused=refused.labels(receiver=receiver),
        timed_out=lambda kind: timed_out.labels(receiver=receiver, timeout=kind),
        malformed=malformed.labels(receiver=receiver),
        open_connections=open_connections.labels(receiver=receiver),
    )


def auth_middleware(authenticator: ServerAuthenticator, export: ExportHandler) -> Middleware:
    """Refuses, with 401 and ``WWW-Authenticate``, every request the authenticator does not let in."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            headers.setdefault(key.lower(), value)
        denied = await authenticator.authenticate(headers)
        if denied is None:
            return await handler(request)
        export.auth_denied("http", denied, str(request.remote))
        return status_response(401, denied.message, _request_format(request),
                               {"WWW-Authenticate": authenticator.challenge})

    return middleware


def _other_signal(signal: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return status_response(
            404, f"tracetriage accepts traces only: {signal} are not accepted ({request.path})",
            _request_format(request),
        )

    return handler
