"""HTTP redirects for clients that carry secrets (exporter headers, alert routing keys): same origin only.

aiohttp follows a redirect to any host and sends the request there again, body and headers included
(``Authorization``, ``X-Api-Key``, a PagerDuty routing key in the JSON body). Our clients post with
``allow_redirects=False`` and ask :func:`follow` what to do with a 3xx answer: a ``Location`` on the same
origin (scheme, host and port) is followed, at most :data:`MAX_REDIRECTS` times per request; anything
else is refused (:class:`RedirectRefused`) and the request counts as failed, permanently, since asking
again gets the same answer. The body is posted again only to the origin it was meant for.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from collector.config.opaque import redact_url
from collector.errors import TraceTriageError

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectRefused(TraceTriageError):
    """A redirect that is not followed; its message names hosts only, never a path or credentials."""

    retriable = False


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def follow(url: str, location: str | None, hops: int) -> str:
    """The URL to post to next after a redirect from ``url`` to ``location`` (the ``hops``-th of this
    request). Raises :class:`RedirectRefused` for another origin, a missing Location or too many hops."""
    where = redact_url(url, path=True)
    if not location:
        raise RedirectRefused(f"{where} answered a redirect without a Location")
    try:
        target = urljoin(url, location.strip())
        target_origin = origin(target)
    except ValueError:
        raise RedirectRefused(f"{where} redirected to an invalid Location") from None
    if target_origin != origin(url):
        scheme, host, port = target_origin
        raise RedirectRefused(f"{where} redirected to another origin ({scheme}://{host}:{port}): not followed, "
                              "so that the request's credentials stay with the host they were meant for")
    if hops > MAX_REDIRECTS:
        raise RedirectRefused(f"{where} redirected more than {MAX_REDIRECTS} times")
    return target


__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "RedirectRefused", "follow", "origin"]
