"""The ``otlp`` exporter: OTLP over gRPC (``TraceService/Export``), as the OTel Collector's otlpexporter.

The batch's wire bytes go out unchanged (no re-serialization). Failures map to the OTLP spec: the
codes CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS are retriable, and
RESOURCE_EXHAUSTED is when the status carries ``google.rpc.RetryInfo`` (whose delay becomes the retry
hint); every other code is permanent. A partial success is logged and its rejected spans counted as
failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import grpc.aio
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.auth import AuthConfig, ClientAuthenticator, auth_ref, client_authenticator
from collector.component import ExtensionRef, Factory, Host, Kind, Settings
from collector.config.opaque import Opaque
from collector.config.schema import Duration, field
from collector.config.tls import TLSClientConfig, read_pem, system_ca_bundle
from collector.consumer import Capabilities
from collector.errors import ComponentStartError, ConsumerError, PermanentError, RefusedError
from collector.exporters.helper import ExporterBaseConfig, QueuedRetrySender, rejected_spans
from collector.model import SpanBatch

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

RETRIABLE_CODES = frozenset({
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
})

_HOST_PORT_RE = re.compile(r"^(?:\[(?P<ip6>[0-9a-fA-F:.%\w]+)\]|(?P<host>[^:/\s\[\]]+)):(?P<port>\d{1,5})$")
DEFAULT_KEEPALIVE_TIMEOUT = Duration(10.0)
DEFAULT_TLS = TLSClientConfig()


@dataclass(frozen=True)
class KeepaliveConfig:
    time: Duration = Duration(0.0)
    timeout: Duration = field(DEFAULT_KEEPALIVE_TIMEOUT, ge=0)
    permit_without_stream: bool = False


@dataclass(frozen=True, kw_only=True)
class OTLPConfig(ExporterBaseConfig):
    endpoint: str
    tls: TLSClientConfig = DEFAULT_TLS
    headers: dict[str, Opaque] = field(default_factory=dict)
    compression: Literal["gzip", "none", ""] = "gzip"
    balancer_name: Literal["round_robin", "pick_first", ""] = "round_robin"
    authority: str = ""
    keepalive: KeepaliveConfig | None = None
    auth: AuthConfig | None = None

    def validate(self) -> list[tuple[str, str]]:
        try:
            grpc_target(self.endpoint)
        except ValueError as e:
            return [("endpoint", str(e))]
        if self.auth is not None and self.tls.insecure:
            return [("auth", "credentials are not sent over a connection without TLS (tls.insecure: true), as "
                             "gRPC refuses it upstream: set up TLS to the backend")]
        return []

    def extension_refs(self) -> list[ExtensionRef]:
        return auth_ref("auth", self.auth)


def grpc_target(endpoint: str) -> str:
    """The gRPC target for a configured endpoint (``host:port``; an ``http(s)://`` prefix is dropped)."""
    text = endpoint.strip()
    if not text:
        raise ValueError("must be host:port, e.g. tempo:4317")
    for prefix in ("http://", "https://"):
        if text.startswith(prefix):
            text = text[len(prefix):].rstrip("/")
    if text.startswith(("unix:", "dns:")):
        return text
    m = _HOST_PORT_RE.match(text)
    if not m:
        raise ValueError(f"must be host:port, e.g. tempo:4317, got {endpoint!r}")
    port = int(m.group("port"))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in {endpoint!r}")
    return text


def retry_delay_from(metadata: Any) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in a gRPC status' trailing metadata, if any."""
    if not metadata:
        return None
    for key, value in metadata:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def error_from_rpc(err: grpc.aio.AioRpcError) -> ConsumerError:
    """Map a failed Export call to a retriable or permanent ConsumerError."""
    code = err.code()
    delay = retry_delay_from(err.trailing_metadata())
    text = f"gRPC {code.name if code else 'UNKNOWN'}: {err.details() or ''}".rstrip(": ")
    if code in RETRIABLE_CODES:
        return ConsumerError(text, retriable=True, retry_after=delay)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None:
        return ConsumerError(text, retriable=True, retry_after=delay)
    return PermanentError(text)


class OTLPExporter:
    # Its sender logs what a shutdown cut short by the deadline leaves behind (on disk or lost).
    reports_held_data = True
    __slots__ = ("_call", "_channel", "_client_auth", "_config", "_logger", "_metadata", "_name", "_sender",
                 "_target")

    def __init__(self, settings: Settings, config: OTLPConfig) -> None:
        self._config = config
        self._logger = settings.logger
        self._name = str(settings.id)
        self._target = grpc_target(config.endpoint)
        self._metadata = tuple((k.lower(), v.reveal()) for k, v in config.headers.items())
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse] | None = None
        self._client_auth: ClientAuthenticator | None = None
        self._sender = QueuedRetrySender.from_config(settings, self._export, config)

    def _options(self) -> list[tuple[str, Any]]:
        cfg = self._config
        options: list[tuple[str, Any]] = []
        if cfg.balancer_name:
            options.append(("grpc.lb_policy_name", cfg.balancer_name))
        if cfg.authority:
            options.append(("grpc.default_authority", cfg.authority))
        if cfg.tls.server_name_override:
            options.append(("grpc.ssl_target_name_override", cfg.tls.server_name_override))
        if cfg.keepalive is not None and cfg.keepalive.time > 0:
            options += [
                ("grpc.keepalive_time_ms", int(cfg.keepalive.time * 1000)),
                ("grpc.keepalive_timeout_ms", int(cfg.keepalive.timeout * 1000)),
                ("grpc.keepalive_permit_without_calls", int(cfg.keepalive.permit_without_stream)),
            ]
        return options

    def _credentials(self) -> grpc.ChannelCredentials | None:
        tls = self._config.tls
        if tls.insecure:
            return None
        root = read_pem(tls.ca_file, "CA") if tls.ca_file else None
        if root is not None and tls.include_system_ca_certs_pool:
            root += b"\n" + system_ca_bundle()
        cert = read_pem(tls.cert_file, "TLS certificate") if tls.cert_file else None
        key = read_pem(tls.key_file, "TLS key") if tls.key_file else None
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        if self._channel is not None or self._sender.closed:
            return
        if self._config.auth is not None:
            self._client_auth = client_authenticator(host, self._config.auth, f"exporter {self._name}")
        try:
            creds = self._credentials()
        except OSError as e:
            raise ComponentStartError(self._name, e) from e
        compression = grpc.Compression.Gzip if self._config.compression == "gzip" else grpc.Compression.NoCompression
        if creds is None:
            channel = grpc.aio.insecure_channel(self._target, options=self._options(), compression=compression)
        else:
            channel = grpc.aio.secure_channel(self._target, creds, options=self._options(), compression=compression)
        self._channel = channel
        self._call = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        await self._sender.start(host)

    async def consume_traces(self, batch: SpanBatch) -> None:
        await self._sender.consume_traces(batch)

    async def _export(self, batch: SpanBatch) -> int | None:
        call = self._call
        if call is None:
            raise RefusedError(f"otlp exporter {self._name} is not started")
        timeout = float(self._config.timeout) or None
        metadata = self._metadata
        if self._client_auth is not None:  # read per call: a rotated token goes out at once
            metadata += tuple((k.lower(), v) for k, v in self._client_auth.client_headers().items())
        try:
            response = await call(batch.to_bytes(), timeout=timeout, metadata=metadata or None)
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e) from None
        return rejected_spans(self._logger, self._name, response, batch)

    async def shutdown(self) -> None:
        try:
            await self._sender.drain()
        finally:
            channel, self._channel = self._channel, None
            self._call = None
            if channel is not None:
                await channel.close()


def create(settings: Settings, config: OTLPConfig) -> OTLPExporter:
    return OTLPExporter(settings, config)


# ``otlp_grpc`` is the OTel Collector's name for this exporter since v0.144; ``otlp`` remains an alias there.
factory = Factory("otlp", Kind.EXPORTER, OTLPConfig, create, description="Sends batches over OTLP/gRPC.",
                  aliases=("otlp_grpc",))

__all__ = ["OTLPConfig", "OTLPExporter", "error_from_rpc", "factory", "grpc_target", "retry_delay_from"]
