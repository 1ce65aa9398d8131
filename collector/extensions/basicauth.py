"""``basicauth`` extension: HTTP Basic authentication, as contrib's basicauthextension.

```yaml
extensions:
  basicauth/server:                 # a receiver's auth: checks clients against htpasswd entries
    htpasswd:
      file: /etc/tracetriage/.htpasswd
      inline: |
        ${env:BASIC_AUTH_USERNAME}:${env:BASIC_AUTH_PASSWORD}
  basicauth/client:                 # an exporter's auth: sends these credentials
    client_auth: {username: tracetriage, password: ${env:UPSTREAM_PASSWORD}}
```

One instance is either a server authenticator (``htpasswd``) or a client one (``client_auth``), never both.
``inline`` entries win over ``file`` entries for the same user. Supported entries are listed in
:mod:`collector.extensions.htpasswd` (bcrypt, {SHA}, {SSHA}, plain text); the file is read at start.

A bcrypt check costs milliseconds of CPU, so it runs on a worker thread, and credentials that passed are
remembered (by a SHA-256 of user and password, at most :data:`VERIFIED_CACHE_SIZE`, oldest forgotten first)
so that a client sending the same credentials on every request costs one check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from collector.auth import Denied
from collector.component import Factory, Host, Kind, Settings
from collector.config.opaque import NO_SECRET, Opaque
from collector.config.schema import field
from collector.errors import ComponentStartError
from collector.extensions.htpasswd import Entry, HtpasswdError, merge, parse_htpasswd

VERIFIED_CACHE_SIZE = 1024
REALM = "tracetriage"
_DUMMY = Entry("plain", b"\x00" * 16)


@dataclass(frozen=True)
class HtpasswdConfig:
    file: str = ""
    inline: Opaque = NO_SECRET

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.file and not self.inline:
            yield "", "give file or inline (or both)"
        if self.inline:
            try:
                parse_htpasswd(self.inline.reveal(), "inline")
            except HtpasswdError as e:
                yield "inline", str(e)


@dataclass(frozen=True)
class ClientAuthConfig:
    username: str = field(min_len=1)
    password: Opaque = NO_SECRET

    def validate(self) -> Iterator[tuple[str, str]]:
        if ":" in self.username:
            yield "username", "must not contain ':' (Basic credentials are user:password)"


@dataclass(frozen=True)
class BasicAuthConfig:
    htpasswd: HtpasswdConfig | None = None
    client_auth: ClientAuthConfig | None = None

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.htpasswd is None and self.client_auth is None:
            yield "", "give htpasswd (to check clients) or client_auth (to send credentials)"
        elif self.htpasswd is not None and self.client_auth is not None:
            yield "", "give htpasswd or client_auth, not both: use one basicauth extension for each role"


class BasicAuth:
    """Server authenticator (``htpasswd``) or client authenticator (``client_auth``)."""

    def __init__(self, settings: Settings, config: BasicAuthConfig) -> None:
        self.id = settings.id
        self._config = config
        self._logger = settings.logger
        self._entries: dict[str, Entry] = {}
        self._verified: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._header: dict[str, str] = {}
        self._cached = settings.telemetry.gauge(
            "tracetriage_auth_basic_verified_cache_entries",
            f"Credentials a basicauth extension remembers as checked (at most {VERIFIED_CACHE_SIZE}).",
            ("extension",)).labels(extension=str(self.id))
        client = config.client_auth
        if client is not None:
            raw = f"{client.username}:{client.password.reveal()}".encode()
            self._header = {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def cannot_serve(self, role: str) -> str | None:
        if role == "server" and self._config.htpasswd is None:
            return f"basicauth {self.id} has no htpasswd to check clients against"
        if role == "client" and self._config.client_auth is None:
            return f"basicauth {self.id} has no client_auth credentials to send"
        return None

    @property
    def challenge(self) -> str:
        return f'Basic realm="{REALM}", charset="UTF-8"'

    async def start(self, host: Host) -> None:
        cfg = self._config.htpasswd
        if cfg is None:
            return
        tables = []
        try:
            if cfg.file:
                text = await asyncio.to_thread(Path(cfg.file).read_text, encoding="utf-8")
                tables.append(parse_htpasswd(text, cfg.file).items())
            if cfg.inline:
                tables.append(parse_htpasswd(cfg.inline.reveal(), "htpasswd.inline").items())
        except (OSError, UnicodeDecodeError, HtpasswdError) as e:
            raise ComponentStartError(f"extension {self.id}", f"htpasswd: {e}") from e
        self._entries = merge(*tables)
        if not self._entries:
            raise ComponentStartError(f"extension {self.id}", "htpasswd: no user:password entries")
        self._logger.info("basicauth %s: %d user%s", self.id, len(self._entries),
                          "" if len(self._entries) == 1 else "s")

    async def shutdown(self) -> None:
        self._verified.clear()
        self._cached.set(0)

    async def authenticate(self, headers: Mapping[str, str]) -> Denied | None:
        value = headers.get("authorization", "").strip()
        if not value:
            return Denied("missing_credentials", "missing or empty Authorization header")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return Denied("malformed_credentials", "expected Basic credentials")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return Denied("malformed_credentials", "Basic credentials are not base64 of user:password")
        user, sep, password = decoded.partition(":")
        if not sep:
            return Denied("malformed_credentials", "Basic credentials are not base64 of user:password")
        key = hashlib.sha256(f"{user}\x00{password}".encode("utf-8", "surrogateescape")).digest()
        if key in self._verified:
            self._verified.move_to_end(key)
            return None
        entry = self._entries.get(user)
        checked = entry or _DUMMY
        ok = await asyncio.to_thread(checked.check, password) if checked.slow else checked.check(password)
        if entry is None or not ok:
            return Denied("invalid_credentials", "invalid username or password")
        self._verified[key] = None
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        self._cached.set(len(self._verified))
        return None

    def client_headers(self) -> dict[str, str]:
        return dict(self._header)


def create(settings: Settings, config: BasicAuthConfig) -> BasicAuth:
    return BasicAuth(settings, config)


factory = Factory(
    "basicauth", Kind.EXTENSION, BasicAuthConfig, create,
    description="HTTP Basic authentication: htpasswd entries for receivers, client_auth for exporters.",
)

__all__ = ["VERIFIED_CACHE_SIZE", "BasicAuth", "BasicAuthConfig", "ClientAuthConfig", "HtpasswdConfig", "factory"]
