"""Secrets in config, kept out of every printout, as the OTel Collector's ``configopaque``.

An option typed :class:`Opaque` (a token, a password, a routing key, a header value) is decoded into an
object whose ``str``, ``repr`` and ``format`` are ``[REDACTED]``: a log line, a config error, the
``validate`` output or a metric label that names it shows no secret. The value itself comes out only
through :meth:`Opaque.reveal`, called where it is sent (a header, a request body, a client argument).

An Opaque is not a ``str`` on purpose: code that forgets ``reveal()`` fails loudly (a client library
rejects it) instead of quietly sending ``[REDACTED]`` or logging the value.

URLs carry secrets too. :class:`SecretURL` prints its URL with the userinfo password redacted
(``https://alerts:[REDACTED]@hooks.example/v1``); :class:`SecretPathURL` redacts the path and query as
well, for URLs whose path is the credential (Slack incoming webhooks, most webhook URLs). For a URL that
stays a plain ``str`` (an exporter's ``endpoint``), :func:`redact_url` gives the printable form.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[REDACTED]"


class Opaque:
    """A secret string: prints as ``[REDACTED]``; :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        if isinstance(value, Opaque):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"{type(self).__name__} takes a str, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for sending it where it belongs, never for printing."""
        return self._value

    def redacted(self) -> str:
        """What every printout shows."""
        return REDACTED

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return self.redacted()

    def __format__(self, spec: str) -> str:
        return format(self.redacted(), spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Opaque):
            return self._value == other._value
        if isinstance(other, str):
            return self._value == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Opaque], tuple[str]]:
        return type(self), (self._value,)


NO_SECRET = Opaque()  # the default of an optional secret


class SecretURL(Opaque):
    """A URL that may carry ``user:password@``: prints with the password redacted."""

    __slots__ = ()

    def redacted(self) -> str:
        return redact_url(self._value)

    @property
    def scheme(self) -> str:
        return urlsplit(self._value).scheme.lower()


class SecretPathURL(SecretURL):
    """A URL whose path or query is a credential (a Slack webhook's ``/services/T/B/token``): prints as
    ``scheme://host:port/[REDACTED]``, the password redacted too."""

    __slots__ = ()

    def redacted(self) -> str:
        return redact_url(self._value, path=True)


def has_userinfo(url: str) -> bool:
    """Whether ``url`` carries ``user[:password]@`` (HTTP clients turn it into an Authorization header)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None


def redact_url(url: str, *, path: bool = False) -> str:
    """``url`` fit to print: the userinfo password (and with ``path``, the path, query and fragment)
    replaced by ``[REDACTED]``. Text that does not parse as a URL is redacted whole."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.netloc:
        return REDACTED if url else ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:{REDACTED}@{netloc}" if parts.password is not None else f"{user}@{netloc}"
    if path:
        tail = parts.path or parts.query or parts.fragment
        return urlunsplit((parts.scheme, netloc, f"/{REDACTED}" if tail else "", "", ""))
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scrub(text: str, secrets: Iterable[Opaque | str]) -> str:
    """``text`` (an error message from a client library, which may quote a URL or a header) with every
    occurrence of the given secrets replaced by ``[REDACTED]``. For a URL, its password, path and query
    are scrubbed as parts too, since libraries quote them apart."""
    pieces: set[str] = set()
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Opaque) else secret
        if not value:
            continue
        pieces.add(value)
        if isinstance(secret, SecretURL):
            pieces.update(_url_pieces(value, path=isinstance(secret, SecretPathURL)))
    for piece in sorted(pieces, key=len, reverse=True):  # longest first: a URL before its own path
        if len(piece) >= 3:
            text = text.replace(piece, REDACTED)
    return text


def _url_pieces(url: str, *, path: bool) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    out = [parts.password or ""]
    if parts.password:
        out.append(f"{parts.username or ''}:{parts.password}")
    if path:
        out += [parts.path, parts.query, parts.fragment]
        out += [p for p in parts.path.split("/") if len(p) >= 12]  # a token may be quoted alone
    return [p for p in out if p and p != "/"]


__all__ = ["NO_SECRET", "REDACTED", "Opaque", "SecretPathURL", "SecretURL", "has_userinfo", "redact_url", "scrub"]
