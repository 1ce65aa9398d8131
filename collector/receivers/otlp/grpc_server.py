"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on grpc.aio.

The method is registered generically with no deserializer, so the handler gets the request's wire
bytes: they become the batch payload unchanged when every span passes the id check. The metrics and
logs services answer UNIMPLEMENTED so a misconfigured client learns why instead of timing out.

Export is registered as stream-unary although it is a unary RPC on the wire: grpc.aio calls a unary
handler only once the whole request has arrived, and gRPC has no per-stream timeout, so a stream that
sends HEADERS and never its message would be held (with its call state) for as long as the connection
lives. Called at HEADERS, the handler reads the one message itself within ``read_timeout`` and ends the
stream with ``DEADLINE_EXCEEDED`` when it does not come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.auth import ServerAuthenticator
from collector.config.net import format_address, listen_address
from collector.errors import ConsumerError
from collector.receivers.otlp.config import MIB, GRPCConfig
from collector.receivers.otlp.handler import ExportHandler, retry_delay
from collector.receivers.otlp.http_guard import Throttled, auto_max_connections
from collector.telemetry import Telemetry
from collector.tls import ReloadingGRPCCredentials
from collector.wire import certainly_valid

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
PROFILES_SERVICE = "opentelemetry.proto.collector.profiles.v1development.ProfilesService"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_Metadata = tuple[tuple[str, str | bytes], ...]


def retry_info_metadata(message: str, delay: float) -> _Metadata:
    """Trailing metadata carrying a ``google.rpc.Status`` (UNAVAILABLE) with a ``RetryInfo`` detail."""
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromNanoseconds(round(delay * 1e9))
    detail = AnyProto()
    detail.Pack(retry)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


_MS_OPTIONS = (  # keepalive.server_parameters.* / enforcement_policy.* -> gRPC core channel args
    ("max_connection_idle", "grpc.max_connection_idle_ms"),
    ("max_connection_age", "grpc.max_connection_age_ms"),
    ("max_connection_age_grace", "grpc.max_connection_age_grace_ms"),
    ("time", "grpc.keepalive_time_ms"),
    ("timeout", "grpc.keepalive_timeout_ms"),
)


def grpc_max_connections(cfg: GRPCConfig) -> int:
    """``max_connections``, or for 0 a quarter of the open-file limit (at most 16384): HTTP's automatic limit
    takes half, and an HTTP/2 connection carries up to ``max_concurrent_streams`` requests at once."""
    return cfg.max_connections or max(1, auto_max_connections() // 2)


def server_options(cfg: GRPCConfig) -> list[tuple[str, int]]:
    """The grpc.aio server options for ``cfg``; a keepalive duration of 0 keeps gRPC's default."""
    params, policy = cfg.keepalive.server_parameters, cfg.keepalive.enforcement_policy
    options = [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", cfg.max_recv_msg_size_mib * MIB),
    ]
    if cfg.max_concurrent_streams > 0:  # advertised in SETTINGS, and enforced; 0 (upstream's default): no limit
        options.append(("grpc.max_concurrent_streams", cfg.max_concurrent_streams))
    # Connections open at once: gRPC closes a further one as soon as it is accepted. With the streams per
    # connection this bounds every idle stream a client can hold.
    options.append(("grpc.max_allowed_incoming_connections", grpc_max_connections(cfg)))
    for name, arg in _MS_OPTIONS:
        seconds = getattr(params, name)
        if seconds > 0:
            options.append((arg, max(1, round(seconds * 1000))))
    if policy.min_time > 0:  # the least time between a client's pings when no data is sent
        options.append(("grpc.http2.min_ping_interval_without_data_ms", max(1, round(policy.min_time * 1000))))
    # Server side, this also lets clients ping while no RPC is open (else they are struck off as abusive).
    options.append(("grpc.keepalive_permit_without_calls", int(policy.permit_without_stream)))
    return options


class GRPCServer:
    """One grpc.aio server bound to the configured endpoint. ``start()`` returns the bound port."""

    def __init__(self, config: GRPCConfig, handler: ExportHandler, logger: logging.Logger,
                 telemetry: Telemetry | None = None, receiver: str = "otlp") -> None:
        self._config = config
        self._telemetry = telemetry
        self._receiver = receiver
        self._handler = handler
        self._logger = logger
        self._server: Any = None
        self.port: int | None = None
        self._read_timeouts: Any = None
        if telemetry is not None:
            self._read_timeouts = telemetry.counter(
                "tracetriage_receiver_grpc_read_timeouts",
                "gRPC streams ended with DEADLINE_EXCEEDED because their request had not arrived within "
                "read_timeout of their HEADERS.", ("receiver",)).labels(receiver=receiver)
        self._read_timeout_log = Throttled(logger, f"otlp/grpc: streams cut after read_timeout "
                                                   f"({config.read_timeout:g}s) without their request")

    def _handlers(self) -> Sequence[Any]:
        trace = grpc.method_handlers_generic_handler(
            TRACE_SERVICE,
            # no (de)serializers: raw bytes; stream-unary so that the handler starts at HEADERS (module doc)
            {"Export": grpc.stream_unary_rpc_method_handler(self._export_stream)},
        )
        others = [
            grpc.method_handlers_generic_handler(
                service, {"Export": grpc.unary_unary_rpc_method_handler(_unimplemented(signal))}
            )
            for service, signal in ((METRICS_SERVICE, "metrics"), (LOGS_SERVICE, "logs"),
                                    (PROFILES_SERVICE, "profiles"))
        ]
        return [trace, *others]

    async def start(self, authenticator: ServerAuthenticator | None = None) -> int:
        """Bind and serve; with an ``authenticator`` every RPC's metadata is checked first. Raises OSError /
        ssl errors / ValueError on failure (nothing left running)."""
        cfg = self._config
        host, port = listen_address(cfg.endpoint)
        address = format_address(host, port)
        credentials = None
        if cfg.tls is not None:  # mutual TLS with client_ca_file; the certificate follows tls.reload_interval
            credentials = ReloadingGRPCCredentials(cfg.tls, f"receiver {self._receiver} (grpc)", self._logger,
                                                   self._telemetry).credentials
        interceptors = [AuthInterceptor(authenticator, self._handler)] if authenticator is not None else []
        server = grpc.aio.server(handlers=self._handlers(), options=server_options(cfg), interceptors=interceptors)
        try:
            if credentials is None:
                bound = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, credentials)
        except RuntimeError as e:  # grpc raises RuntimeError("Failed to bind to address ...")
            raise OSError(f"cannot listen on {address}: {e} (is the port in use?)") from None
        if not bound:
            raise OSError(f"cannot listen on {address} (is the port in use?)")
        await server.start()
        self._server = server
        self.port = bound
        self._logger.info("Starting GRPC server on %s (endpoint %s%s)", format_address(host, bound), cfg.endpoint,
                          ", TLS" if credentials is not None else "")
        return int(bound)

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs, let in-flight ones finish for up to ``grace`` seconds, then close."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    async def _export_stream(self, requests: Any, context: Any) -> bytes:
        """The unary Export: its one request read within ``read_timeout``, then :meth:`_export`."""
        timeout = self._config.read_timeout
        data: bytes | None = None
        extra = False
        try:
            async with asyncio.timeout(timeout if timeout > 0 else None):
                async for message in requests:
                    if data is not None:
                        extra = True
                        break
                    data = message
        except TimeoutError:
            if self._read_timeouts is not None:
                self._read_timeouts.inc()
            self._read_timeout_log.note(str(context.peer()))
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"request not received within {timeout:g}s of the stream's start (read_timeout)")
            raise AssertionError("unreachable") from None  # abort raises
        if data is None or extra:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "Export is a unary RPC: send exactly one ExportTraceServiceRequest "
                                f"(got {'none' if data is None else 'more than one'})")
            raise AssertionError("unreachable")
        return await self._export(data, context)

    async def _export(self, data: bytes, context: Any) -> bytes:
        request: ExportTraceServiceRequest | None = None
        try:
            # Validation: the compiled check when it is certain (the handler then works from these bytes),
            # else protobuf (the handler then works from the message's canonical bytes: what protobuf read).
            if not certainly_valid(data):
                request = ExportTraceServiceRequest.FromString(data)
        except DecodeError as e:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode ExportTraceServiceRequest: {e}"
            )
            raise AssertionError("unreachable") from None  # abort raises
        code: Any = None
        message = ""
        trailers: _Metadata = ()
        try:
            response = await self._handler.export(request, data if request is None else None, "grpc")
        except ConsumerError as e:
            message = str(e) or type(e).__name__
            if e.retriable:
                code = grpc.StatusCode.UNAVAILABLE
                trailers = retry_info_metadata(message, retry_delay(e))
            else:
                code = grpc.StatusCode.INVALID_ARGUMENT
        except Exception:
            self._logger.exception("otlp/grpc: unexpected error passing spans on")
            code, message = grpc.StatusCode.INTERNAL, "internal error (logged by the collector)"  # no internals
        if code is not None:
            await context.abort(code, message, trailing_metadata=trailers)
        wire: bytes = response.SerializeToString()
        return wire


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc.aio is untyped
    """Checks each RPC's metadata with the authenticator before its handler runs; a refused RPC ends with
    UNAUTHENTICATED (counted by the export handler)."""

    def __init__(self, authenticator: ServerAuthenticator, handler: ExportHandler) -> None:
        self._auth = authenticator
        self._handler = handler

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        headers: dict[str, str] = {}
        for key, value in handler_call_details.invocation_metadata or ():
            if isinstance(value, str):  # binary (-bin) entries are never credentials
                headers.setdefault(key.lower(), value)
        denied = await self._auth.authenticate(headers)
        if denied is None:
            return await continuation(handler_call_details)
        self._handler.auth_denied("grpc", denied, "a gRPC client")  # the interceptor does not see the peer
        # stream-unary: refused at HEADERS, without waiting for (or holding the stream until) the request
        return grpc.stream_unary_rpc_method_handler(_unauthenticated(denied.message))


def _unauthenticated(message: str) -> Any:
    async def handler(requests: Any, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        raise AssertionError("unreachable")

    return handler


def _unimplemented(signal: str) -> Any:
    async def handler(data: bytes, context: Any) -> bytes:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"tracetriage accepts traces only: the {signal} service is not implemented",
        )
        raise AssertionError("unreachable")

    return handler
