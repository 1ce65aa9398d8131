"""Cross-origin requests to the OTLP/HTTP receiver (``protocols.http.cors``), as the OTel Collector's
confighttp answers them (with the rs/cors library): browsers' OpenTelemetry exporters post from a page's
origin.

* A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed origin, for ``GET``,
  ``POST`` or ``HEAD`` and only allowed headers, is answered ``204`` with the ``Access-Control-Allow-*``
  headers and ``Access-Control-Max-Age`` when ``max_age`` is set; any other preflight gets ``204`` without
  them, so the browser refuses.
* Other requests from an allowed origin get ``Access-Control-Allow-Origin`` (the origin itself),
  ``Access-Control-Allow-Credentials: true`` and ``Access-Control-Expose-Headers``.

An origin pattern may hold one ``*`` standing for any characters (``https://*.example.com``); ``*`` alone
allows every origin. ``Accept``, ``Accept-Language``, ``Content-Type`` and ``Content-Language`` are always
allowed request headers, ``X-Requested-With`` too when no headers are listed, and ``*`` allows any.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from collector.receivers.otlp.config import CORSConfig

ALLOWED_METHODS = frozenset({"GET", "POST", "HEAD"})
_ALWAYS_ALLOWED = frozenset({"accept", "accept-language", "content-type", "content-language"})
_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


class CORSPolicy:
    """Which origins and request headers a CORS config allows."""

    def __init__(self, config: CORSConfig) -> None:
        origins = [o.strip().lower() for o in config.allowed_origins if o.strip()]
        self.any_origin = "*" in origins
        self._exact = {o for o in origins if "*" not in o}
        self._patterns = [tuple(o.split("*", 1)) for o in origins if "*" in o and o != "*"]
        headers = {h.strip().lower() for h in config.allowed_headers if h.strip()}
        self.any_header = "*" in headers
        self._headers = _ALWAYS_ALLOWED | headers | (set() if headers else {"x-requested-with"})
        self.exposed = ", ".join(h.strip() for h in config.exposed_headers if h.strip())
        self.max_age = config.max_age

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.lower()
        if self.any_origin or origin in self._exact:
            return True
        return any(len(origin) >= len(pre) + len(post) and origin.startswith(pre) and origin.endswith(post)
                   for pre, post in self._patterns)

    def headers_allowed(self, requested: str) -> bool:
        if self.any_header:
            return True
        return all(h.strip().lower() in self._headers for h in requested.split(",") if h.strip())


def cors_middleware(config: CORSConfig) -> Middleware:
    """An aiohttp middleware applying ``config`` to every route of the server."""
    policy = CORSPolicy(config)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        method = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and method is not None:
            return _preflight(policy, origin, method, request.headers.get("Access-Control-Request-Headers", ""))
        response = await handler(request)
        response.headers.add("Vary", "Origin")
        if origin is not None and policy.origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            if policy.exposed:
                response.headers["Access-Control-Expose-Headers"] = policy.exposed
        return response

    return middleware


def _preflight(policy: CORSPolicy, origin: str | None, method: str, requested: str) -> web.Response:
    response = web.Response(status=204)
    response.headers["Vary"] = _PREFLIGHT_VARY
    if origin is None or not policy.origin_allowed(origin):
        return response
    if method.upper() not in ALLOWED_METHODS or not policy.headers_allowed(requested):
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = method.upper()
    if requested.strip():
        response.headers["Access-Control-Allow-Headers"] = requested
    response.headers["Access-Control-Allow-Credentials"] = "true"
    if policy.max_age > 0:
        response.headers["Access-Control-Max-Age"] = str(policy.max_age)
    return response


__all__ = ["ALLOWED_METHODS", "CORSPolicy", "cors_middleware"]
