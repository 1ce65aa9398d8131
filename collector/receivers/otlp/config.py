"""Config of the ``otlp`` receiver, with the OTel Collector's names and defaults.

```yaml
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: localhost:4317
        max_recv_msg_size_mib: 4
        max_concurrent_streams: 100
        max_connections: 0          # 0: a quarter of the process's open-file limit
        read_timeout: 1m            # a stream's request must arrive within this (not upstream)
        keepalive:
          server_parameters: {max_connection_idle: 5m, max_connection_age: 30m, max_connection_age_grace: 10s}
          enforcement_policy: {min_time: 10s, permit_without_stream: true}
        tls: {...}
      http:
        endpoint: localhost:4318
        max_request_body_size: 20MiB
        read_header_timeout: 1m
        read_timeout: 1m
        idle_timeout: 1m
        max_connections: 0          # 0: half the process's open-file limit
        traces_url_path: /v1/traces
        cors: {allowed_origins: ["https://*.example.com"], allowed_headers: [x-tenant], max_age: 7200}
        auth: {authenticator: bearertokenauth}   # an authenticator extension (both protocols take one)
```

As in the OTel Collector, a protocol written with no value (``grpc:``) is enabled with its defaults,
a protocol left out is not started, and at least one must be given. The endpoints default to
``localhost`` (upstream since v0.110): a receiver that must be reached from elsewhere names its address.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from collector.auth import AuthConfig, auth_ref
from collector.component import ExtensionRef
from collector.config.net import endpoint_issues
from collector.config.schema import ByteSize, Duration, field
from collector.config.tls import TLSServerConfig

MIB = 1024 * 1024


def _endpoint_issues(endpoint: str) -> Iterator[tuple[str, str]]:
    return endpoint_issues(endpoint)


_SERVER_OPTIONS: Mapping[str, str] = {
    "include_metadata": "", "middlewares": "", "transport": "tcp is the only transport",
}


@dataclass(frozen=True)
class CORSConfig:
    """Cross-origin requests from browsers (see :mod:`collector.receivers.otlp.cors`)."""

    allowed_origins: tuple[str, ...] = ()
    allowed_headers: tuple[str, ...] = ()
    exposed_headers: tuple[str, ...] = ()
    max_age: int = field(0, ge=0)


DEFAULT_MAX_CONCURRENT_STREAMS = 100
"""Streams (RPCs) one gRPC connection may hold open at once. Upstream leaves it unlimited; 100 is what
most HTTP/2 servers advertise, and bounds what one client's idle streams can hold."""


@dataclass(frozen=True)
class KeepaliveServerParameters:
    """configgrpc's ``keepalive.server_parameters``; 0 keeps gRPC's default (shown in brackets)."""

    max_connection_idle: Duration = field(Duration(0.0), ge=0)  # [unlimited] a connection with no RPC
    max_connection_age: Duration = field(Duration(0.0), ge=0)  # [unlimited] then GOAWAY
    max_connection_age_grace: Duration = field(Duration(0.0), ge=0)  # [unlimited] for RPCs after GOAWAY
    time: Duration = field(Duration(0.0), ge=0)  # [2h] ping a quiet client after this long
    timeout: Duration = field(Duration(0.0), ge=0)  # [20s] close when the ping is not answered


@dataclass(frozen=True)
class KeepaliveEnforcementPolicy:
    """configgrpc's ``keepalive.enforcement_policy``: how often clients may ping."""

    min_time: Duration = field(Duration(0.0), ge=0)  # [5m]
    permit_without_stream: bool = False


@dataclass(frozen=True)
class KeepaliveServerConfig:
    server_parameters: KeepaliveServerParameters = field(default_factory=KeepaliveServerParameters)
    enforcement_policy: KeepaliveEnforcementPolicy = field(default_factory=KeepaliveEnforcementPolicy)


GRPC_MIN_VERSION_13 = (
    '"1.3" cannot be enforced on gRPC: grpcio\'s server credentials have no minimum TLS version, so a '
    'TLS 1.2 client would still be served; use "1.2" here, or terminate TLS 1.3 in front of the collector'
)


@dataclass(frozen=True)
class GRPCConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {
        **_SERVER_OPTIONS, "read_buffer_size": "", "write_buffer_size": "",
    }

    endpoint: str = "localhost:4317"
    max_recv_msg_size_mib: int = field(4, ge=1)
    max_concurrent_streams: int = field(DEFAULT_MAX_CONCURRENT_STREAMS, ge=0)  # 0: unlimited
    max_connections: int = field(0, ge=0)  # 0: a quarter of the open-file limit (grpc_max_connections)
    read_timeout: Duration = field(Duration(60.0), ge=0)  # HEADERS to the request's end; 0: no limit
    keepalive: KeepaliveServerConfig = field(default_factory=KeepaliveServerConfig)
    tls: TLSServerConfig | None = None
    auth: AuthConfig | None = None

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _endpoint_issues(self.endpoint)
        if self.tls is not None and self.tls.min_version == "1.3":
            yield ("tls.min_version", GRPC_MIN_VERSION_13)


@dataclass(frozen=True)
class HTTPConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {
        **_SERVER_OPTIONS, "response_headers": "", "compression_algorithms": "gzip and deflate are accepted",
        "write_timeout": "",
        "keep_alives_enabled": "", "metrics_url_path": "tracetriage accepts traces only",
        "logs_url_path": "tracetriage accepts traces only", "profiles_url_path": "tracetriage accepts traces only",
    }

    endpoint: str = "localhost:4318"
    max_request_body_size: ByteSize = field(ByteSize(20 * MIB), gt=0)
    traces_url_path: str = "/v1/traces"
    read_header_timeout: Duration = field(Duration(60.0), ge=0)
    read_timeout: Duration = field(Duration(60.0), ge=0)
    idle_timeout: Duration = field(Duration(60.0), ge=0)
    max_connections: int = field(0, ge=0)
    tls: TLSServerConfig | None = None
    cors: CORSConfig | None = field(None, present_enables=True)
    auth: AuthConfig | None = None

    @property
    def traces_path(self) -> str:
        """``traces_url_path`` made absolute, as the OTel Collector does."""
        path = self.traces_url_path.strip()
        return path if path.startswith("/") else "/" + path

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _endpoint_issues(self.endpoint)
        if any(c in self.traces_url_path for c in "?# "):
            yield ("traces_url_path", f"must be a URL path such as /v1/traces, got {self.traces_url_path!r}")


@dataclass(frozen=True)
class ProtocolsConfig:
    """The enabled protocols; None means not started. ``grpc:`` with no value enables gRPC with defaults."""

    grpc: GRPCConfig | None = field(None, present_enables=True)
    http: HTTPConfig | None = field(None, present_enables=True)


@dataclass(frozen=True)
class OTLPReceiverConfig:
    protocols: ProtocolsConfig = field(default_factory=ProtocolsConfig)

    def extension_refs(self) -> list[ExtensionRef]:
        grpc, http = self.protocols.grpc, self.protocols.http
        return [*auth_ref("protocols.grpc.auth", grpc.auth if grpc is not None else None),
                *auth_ref("protocols.http.auth", http.auth if http is not None else None)]

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.protocols.grpc is None and self.protocols.http is None:
            yield ("protocols", "must enable at least one protocol: grpc, http")
