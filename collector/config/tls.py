"""TLS settings shared by receivers (server side) and exporters (client side), as in OTel's configtls."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from collector.config.schema import Duration, field

TLSVersion = Literal["1.2", "1.3"]
# configtls options not implemented: refused as such (collector.config.schema, NOT_IMPLEMENTED).
_NOT_IMPLEMENTED: Mapping[str, str] = {
    "ca_pem": "use ca_file", "cert_pem": "use cert_file", "key_pem": "use key_file", "max_version": "",
    "cipher_suites": "", "curve_preferences": "", "reload_interval": "", "tpm": "",
}


def read_pem(path: str, what: str) -> bytes:
    """Read a PEM file; raise OSError naming what it was for."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise OSError(f"cannot read {what} {path!r}: {e.strerror or e}") from e


def system_ca_bundle() -> bytes:
    """The system's CA certificates (PEM), for clients that take roots as bytes (gRPC)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return read_pem(candidate, "system CA bundle")
    raise OSError("include_system_ca_certs_pool: cannot find the system's CA bundle "
                  f"(looked for {paths.openssl_cafile})")


@dataclass(frozen=True)
class TLSServerConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {
        **{k: v for k, v in _NOT_IMPLEMENTED.items() if k != "reload_interval"},
        "client_ca_file_reload": "reload_interval re-reads client_ca_file too",
    }

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    ca_file: str = field("", alias="ca_file_server")
    min_version: TLSVersion = "1.2"
    # Check the files every reload_interval; re-read them when they changed (collector/tls.py). 0: read once.
    reload_interval: Duration = field(Duration(0.0), ge=0)

    def validate(self) -> list[tuple[str, str]]:
        issues = []
        if bool(self.cert_file) != bool(self.key_file):
            issues.append(("", "cert_file and key_file must be given together"))
        if not self.cert_file:
            issues.append(("cert_file", "is required for a TLS server"))
        return issues

    def ssl_context(self) -> ssl.SSLContext:
        """A server context; raises OSError / ssl.SSLError when a file is unreadable or not a valid cert."""
        read_pem(self.cert_file, "TLS certificate")
        read_pem(self.key_file, "TLS key")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if self.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            read_pem(self.client_ca_file, "client CA")
            ctx.load_verify_locations(self.client_ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        # The HTTP servers speak HTTP/1.1 only: offering h2 would let a client (curl's default) pick a
        # protocol the server then cannot read. gRPC does its own TLS and ALPN (grpc_server.py).
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx


@dataclass(frozen=True)
class TLSClientConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = _NOT_IMPLEMENTED

    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name_override: str = ""
    min_version: TLSVersion = "1.2"
    include_system_ca_certs_pool: bool = False

    def validate(self) -> list[tuple[str, str]]:
        if bool(self.cert_file) != bool(self.key_file):
            return [("", "cert_file and key_file must be given together")]
        return []

    def ssl_context(self) -> ssl.SSLContext | None:
        """None when ``insecure`` (plain text); else a verifying client context. With ``ca_file`` only that CA
        is trusted, unless ``include_system_ca_certs_pool`` (as in OTel's configtls)."""
        if self.insecure:
            return None
        if self.ca_file and not self.include_system_ca_certs_pool:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names, no CAs yet
        else:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if self.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        if self.ca_file:
            read_pem(self.ca_file, "CA")
            ctx.load_verify_locations(self.ca_file)
        if self.cert_file:
            read_pem(self.cert_file, "TLS certificate")
            read_pem(self.key_file, "TLS key")
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
