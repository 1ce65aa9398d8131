"""TLS settings shared by receivers (server side) and exporters (client side), as in OTel's configtls."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from collector.config.schema import field

TLSVersion = Literal["1.2", "1.3"]


def read_pem(path: str, what: str) -> bytes:
    """Read a PEM file; raise OSError naming what it was for."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise OSError(f"cannot read {what} {path!r}: {e.strerror or e}") from e


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    ca_file: str = field("", alias="ca_file_server")
    min_version: TLSVersion = "1.2"

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
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx


@dataclass(frozen=True)
class TLSClientConfig:
    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name_override: str = ""
    min_version: TLSVersion = "1.2"

    def validate(self) -> list[tuple[str, str]]:
        if bool(self.cert_file) != bool(self.key_file):
            return [("", "cert_file and key_file must be given together")]
        return []

    def ssl_context(self) -> ssl.SSLContext | None:
        """None when ``insecure`` (plain text); else a verifying client context."""
        if self.insecure:
            return None
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
