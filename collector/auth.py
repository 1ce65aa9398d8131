"""Authentication between components and their peers, as the OTel Collector's ``configauth``.

A receiver, exporter or alert receiver names an authenticator extension in its config::

    auth: {authenticator: bearertokenauth/ingest}

and looks it up at start with :func:`server_authenticator` or :func:`client_authenticator`. The extension
is found in ``Host.extensions`` by its id; a missing id, or an extension that cannot play that role (a
``health_check``, a ``basicauth`` without ``htpasswd`` asked to check servers' clients), stops the
component from starting with an error naming both.

* A :class:`ServerAuthenticator` checks a request's headers (HTTP headers or gRPC metadata, names in
  lower case) and answers None (let in) or a :class:`Denied` with a short ``reason`` (a metric label) and a
  message for the client. It never sees the request body.
* A :class:`ClientAuthenticator` gives the headers to add to each outgoing request (read per request, so a
  token file that changes is sent at once).

Credentials never appear in what either returns for printing: ``Denied.message`` names what was wrong
("missing credentials"), never the value that was sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from collector.component import ComponentID, ExtensionRef, Host
from collector.config.schema import field
from collector.errors import ComponentStartError

ANY_EXTENSION = ""
"""The ``type`` of an :class:`~collector.component.ExtensionRef` that may name an extension of any type
(an authenticator: its role is checked at start, so plugins can provide one)."""


@dataclass(frozen=True)
class Denied:
    """Why a request was not let in. ``reason`` is one of a few fixed words (a metric label:
    ``missing_credentials``, ``invalid_credentials``, ``malformed_credentials``)."""

    reason: str
    message: str


@runtime_checkable
class ServerAuthenticator(Protocol):
    """Checks the credentials of requests a server receives."""

    async def authenticate(self, headers: Mapping[str, str]) -> Denied | None:
        """None to let the request in, else why not. ``headers`` names are lower case. Work that costs CPU
        (a bcrypt check) is done off the event loop."""
        ...

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of an HTTP 401 (``Bearer realm="tracetriage"``)."""
        ...


@runtime_checkable
class ClientAuthenticator(Protocol):
    """Gives the credentials of requests a client sends."""

    def client_headers(self) -> dict[str, str]:
        """Headers to add to the next request (names as they should be sent)."""
        ...


@dataclass(frozen=True)
class AuthConfig:
    """``auth``: the id of an authenticator extension, as configauth's ``authenticator``."""

    authenticator: str = field(min_len=1)

    def validate(self) -> Iterator[tuple[str, str]]:
        try:
            ComponentID.parse(self.authenticator)
        except ValueError as e:
            yield "authenticator", str(e)


def auth_ref(key: str, auth: AuthConfig | None) -> list[ExtensionRef]:
    """The extension reference of an ``auth`` section at ``key`` (``protocols.grpc.auth``), if set."""
    if auth is None:
        return []
    return [ExtensionRef(f"{key}.authenticator", auth.authenticator, ANY_EXTENSION)]


def _find(host: Host, auth: AuthConfig, who: str) -> object:
    try:
        cid = ComponentID.parse(auth.authenticator)
    except ValueError as e:
        raise ComponentStartError(who, f"auth.authenticator: {e}") from e
    ext = host.extensions.get(cid)
    if ext is None:
        running = ", ".join(sorted(str(k) for k in host.extensions)) or "none"
        raise ComponentStartError(who, f"auth.authenticator {auth.authenticator!r}: no such extension is running "
                                       f"(define it under extensions and list it in service.extensions; "
                                       f"running: {running})")
    return ext


def server_authenticator(host: Host, auth: AuthConfig, who: str) -> ServerAuthenticator:
    """The extension named by ``auth`` as a server authenticator; ComponentStartError naming ``who`` if it
    is missing or cannot check requests."""
    ext = _find(host, auth, who)
    why = _cannot(ext, "server")
    if not isinstance(ext, ServerAuthenticator) or why is not None:
        raise ComponentStartError(who, f"auth.authenticator {auth.authenticator!r} cannot authenticate the requests "
                                       f"a server receives ({why or 'it is not a server authenticator'})")
    return ext


def client_authenticator(host: Host, auth: AuthConfig, who: str) -> ClientAuthenticator:
    """The extension named by ``auth`` as a client authenticator; ComponentStartError naming ``who`` if it
    is missing or cannot give credentials."""
    ext = _find(host, auth, who)
    why = _cannot(ext, "client")
    if not isinstance(ext, ClientAuthenticator) or why is not None:
        raise ComponentStartError(who, f"auth.authenticator {auth.authenticator!r} cannot give credentials to the "
                                       f"requests a client sends ({why or 'it is not a client authenticator'})")
    return ext


def _cannot(ext: object, role: str) -> str | None:
    """An extension that implements both roles but is configured for one says why not the other with
    ``cannot_serve(role) -> str | None``."""
    cannot = getattr(ext, "cannot_serve", None)
    return cannot(role) if callable(cannot) else None


__all__ = [
    "ANY_EXTENSION", "AuthConfig", "ClientAuthenticator", "Denied", "ServerAuthenticator", "auth_ref",
    "client_authenticator", "server_authenticator",
]
