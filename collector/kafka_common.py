"""Settings shared by the ``kafka`` receiver and exporter, with the contrib ``configkafka`` names.

```yaml
brokers: [localhost:9092]
client_id: tracetriage
tls: {insecure: false, ca_file: ca.pem}        # no tls section: plain text
auth:
  sasl: {mechanism: SCRAM-SHA-512, username: u, password: p}
```

contrib's older spellings are read too: ``auth.tls`` (used when there is no top-level ``tls``) and
``auth.plain_text`` (SASL/PLAIN).

:func:`client_kwargs` turns them into aiokafka keyword arguments (``bootstrap_servers``,
``security_protocol``, ``ssl_context``, ``sasl_*``); it raises OSError / ssl.SSLError / ValueError
for what can only be found at start (an unreadable CA file), which components turn into
:class:`~collector.errors.ComponentStartError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from collector.config.net import parse_endpoint
from collector.config.opaque import NO_SECRET, Opaque
from collector.config.schema import field
from collector.config.tls import TLSClientConfig

DEFAULT_BROKERS = ("localhost:9092",)
DEFAULT_CLIENT_ID = "tracetriage"

SASLMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_MECHANISMS: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class SASLConfig:
    """``auth.sasl``. contrib also knows AWS_MSK_IAM_OAUTHBEARER and OIDC; aiokafka here does not."""

    mechanism: str = "PLAIN"
    username: str = ""
    password: Opaque = NO_SECRET
    version: int = field(0, ge=0, le=1)  # accepted for contrib compatibility; aiokafka negotiates it

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.mechanism not in SASL_MECHANISMS:
            yield ("mechanism", f"must be one of {', '.join(SASL_MECHANISMS)}, got {self.mechanism!r}")
        if not self.username:
            yield ("username", "is required")
        if not self.password:
            yield ("password", "is required")


@dataclass(frozen=True)
class PlainTextConfig:
    """``auth.plain_text``: contrib's older spelling of SASL/PLAIN."""

    username: str = ""
    password: Opaque = NO_SECRET


@dataclass(frozen=True)
class AuthConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {"kerberos": "use auth.sasl"}

    sasl: SASLConfig | None = None
    plain_text: PlainTextConfig | None = None
    tls: TLSClientConfig | None = field(None, present_enables=True)  # contrib's older place for tls

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.sasl is not None and self.plain_text is not None:
            yield ("plain_text", "give sasl or plain_text, not both")
        elif self.plain_text is not None:
            for key in ("username", "password"):
                if not getattr(self.plain_text, key):
                    yield (f"plain_text.{key}", "is required")

    @property
    def effective_sasl(self) -> SASLConfig | None:
        if self.sasl is None and self.plain_text is not None:
            return SASLConfig("PLAIN", self.plain_text.username, self.plain_text.password)
        return self.sasl


@dataclass(frozen=True, kw_only=True)
class KafkaClientConfig:
    """The client part of a kafka component's config (subclassed by receiver and exporter configs)."""

    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {
        "resolve_canonical_bootstrap_servers_only": "", "metadata": "", "rack_id": "", "use_leader_epoch": "",
    }

    brokers: tuple[str, ...] = field(DEFAULT_BROKERS, min_len=1)
    client_id: str = DEFAULT_CLIENT_ID
    tls: TLSClientConfig | None = field(None, present_enables=True)
    auth: AuthConfig = AuthConfig()

    @property
    def effective_tls(self) -> TLSClientConfig | None:
        """``tls``, else contrib's older ``auth.tls``."""
        return self.tls if self.tls is not None else self.auth.tls

    @property
    def bootstrap_servers(self) -> list[str]:
        """The brokers; an entry may hold several, comma-separated (handy with ``${env:KAFKA_BROKERS}``)."""
        return [b.strip() for entry in self.brokers for b in entry.split(",") if b.strip()]

    def client_issues(self) -> Iterator[tuple[str, str]]:
        for i, entry in enumerate(self.brokers):
            for broker in entry.split(","):
                try:
                    parse_endpoint(broker.strip(), "localhost:9092")
                except ValueError as e:
                    yield (f"brokers[{i}]", str(e))


def client_kwargs(config: KafkaClientConfig) -> dict[str, Any]:
    """aiokafka client arguments. Raises OSError / ssl.SSLError for unreadable or invalid TLS files and
    ValueError for a SASL mechanism aiokafka does not support."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap_servers,
        "client_id": config.client_id,
    }
    ctx: ssl.SSLContext | None = None
    tls = config.effective_tls
    if tls is not None:
        ctx = tls.ssl_context()
        if ctx is not None:
            kwargs["ssl_context"] = ctx
    sasl = config.auth.effective_sasl
    if sasl is not None:
        if sasl.mechanism not in SASL_MECHANISMS:
            raise ValueError(f"unsupported SASL mechanism {sasl.mechanism!r} (use {', '.join(SASL_MECHANISMS)})")
        kwargs["sasl_mechanism"] = sasl.mechanism
        kwargs["sasl_plain_username"] = sasl.username
        kwargs["sasl_plain_password"] = sasl.password.reveal()
        kwargs["security_protocol"] = "SASL_SSL" if ctx is not None else "SASL_PLAINTEXT"
    else:
        kwargs["security_protocol"] = "SSL" if ctx is not None else "PLAINTEXT"
    return kwargs


__all__ = ["SASL_MECHANISMS", "AuthConfig", "KafkaClientConfig", "PlainTextConfig", "SASLConfig", "client_kwargs"]
