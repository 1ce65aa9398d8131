"""Bounded clients for the OTLP/HTTP listener: a connection limit, a header deadline, quiet logs.

aiohttp has an idle timeout (``keepalive_timeout``, which also covers a connection that never sends a
byte) but no limit on open connections and no deadline for a request's headers, so 1,000 slowloris
clients would be held for ever. :class:`ConnectionGuard` is the protocol factory the listening socket
uses: each accepted connection gets a :class:`_GuardedConnection` that refuses it past
``max_connections`` and closes it when its request line and headers take longer than
``read_header_timeout``, and otherwise hands every event to aiohttp's own request handler unchanged.

What is refused or cut is counted in ``/metrics`` and logged as one warning per interval, never once per
connection: a flood must not turn into a flood of log lines (:class:`Throttled`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Gauge

LOG_INTERVAL = 10.0
"""Seconds between two warnings about the same kind of trouble."""

AUTO_MAX_CONNECTIONS_CAP = 16384


def auto_max_connections() -> int:
    """Half the process's open-file limit (so the other listeners, files and gRPC keep the rest)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return AUTO_MAX_CONNECTIONS_CAP
    return max(1, min(AUTO_MAX_CONNECTIONS_CAP, soft // 2))


class Throttled:
    """A warning logged at most once per ``interval``, saying how many times it happened meanwhile."""

    __slots__ = ("_count", "_interval", "_last", "_logger", "_what")

    def __init__(self, logger: logging.Logger, what: str, interval: float = LOG_INTERVAL) -> None:
        self._logger = logger
        self._what = what
        self._interval = interval
        self._last = -interval
        self._count = 0

    def note(self, detail: str) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._logger.warning("%s: %d since the last report (latest: %s); further ones are counted and "
                                 "reported at most every %gs", self._what, self._count, detail, self._interval)
            self._last = now
            self._count = 0


class GuardCounters:
    """The listener's counters, already labelled with the receiver's id."""

    __slots__ = ("malformed", "open", "refused", "timed_out")

    def __init__(self, refused: Counter, timed_out: Callable[[str], Counter], malformed: Counter,
                 open_connections: Gauge) -> None:
        self.refused = refused
        self.timed_out = timed_out
        self.malformed = malformed
        self.open = open_connections


class ConnectionGuard:
    """Protocol factory for the listening socket; see the module docstring."""

    def __init__(self, *, max_connections: int, read_header_timeout: float, counters: GuardCounters,
                 logger: logging.Logger) -> None:
        self.inner: Callable[[], asyncio.Protocol] | None = None
        """The protocol factory of the server behind (aiohttp's ``runner.server``), set before listening."""
        self.max_connections = max_connections
        self.read_header_timeout = read_header_timeout
        self.counters = counters
        self.open = 0
        self._by_transport: dict[asyncio.BaseTransport, _GuardedConnection] = {}
        self._refused_log = Throttled(logger, "otlp/http: connections refused past max_connections "
                                              f"({max_connections})")
        self._header_log = Throttled(logger, "otlp/http: connections closed after read_header_timeout "
                                             f"({read_header_timeout:g}s) without complete headers")

    def __call__(self) -> _GuardedConnection:
        return _GuardedConnection(self)

    def _admit(self, conn: _GuardedConnection, transport: asyncio.BaseTransport) -> asyncio.Protocol | None:
        if self.open >= self.max_connections:
            self.counters.refused.inc()
            self._refused_log.note(_peer(transport))
            transport.abort()  # type: ignore[attr-defined]
            return None
        self.open += 1
        self.counters.open.inc()
        self._by_transport[transport] = conn
        assert self.inner is not None, "ConnectionGuard.inner must be set before listening"
        return self.inner()

    def _release(self, transport: asyncio.BaseTransport) -> None:
        if self._by_transport.pop(transport, None) is not None:
            self.open -= 1
            self.counters.open.dec()

    def _header_timeout(self, transport: asyncio.BaseTransport) -> None:
        self.counters.timed_out("read_header").inc()
        self._header_log.note(_peer(transport))
        transport.abort()  # type: ignore[attr-defined]

    def middleware(self) -> Any:
        """Marks the span of each request (headers read) so that the header deadline stops for it."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            conn = self._by_transport.get(request.transport) if request.transport is not None else None
            if conn is not None:
                conn.in_request(True)
            try:
                return await handler(request)
            finally:
                if conn is not None:
                    conn.in_request(False)

        return guard


class _GuardedConnection(asyncio.Protocol):
    """One connection: a header deadline in front of aiohttp's handler, to which it passes every event."""

    __slots__ = ("_guard", "_handling", "_inner", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._handling = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        inner = self._guard._admit(self, transport)
        if inner is None:
            return
        self._inner, self._transport = inner, transport
        inner.connection_made(transport)
        self._arm()  # from the first byte on (or none), the headers are due within read_header_timeout

    def _arm(self) -> None:
        timeout = self._guard.read_header_timeout
        if timeout > 0 and self._timer is None and self._transport is not None:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._transport is not None and not self._handling:
            self._guard._header_timeout(self._transport)

    def in_request(self, handling: bool) -> None:
        self._handling = handling
        self._disarm()  # the next request's deadline starts with its first byte

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._handling:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._inner is None or self._transport is None:
            return
        self._guard._release(self._transport)
        inner, self._inner, self._transport = self._inner, None, None
        inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class QuietServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger for this listener: a malformed request is counted and reported once per
    interval, without a traceback; anything else is logged as aiohttp would."""

    def __init__(self, logger: logging.Logger, malformed: Counter) -> None:
        super().__init__(logger, {})
        self._malformed = malformed
        self._reports = Throttled(logger, "otlp/http: malformed HTTP requests answered 400")

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, tuple):
            exc = exc[1]
        if isinstance(exc, HttpProcessingError):
            self._malformed.inc()
            peer = args[0] if args else "?"
            self._reports.note(f"{peer}: {type(exc).__name__}: {exc.message}"[:300])
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through ``guard`` before aiohttp's handler.

    aiohttp offers no hook for the protocol factory, so ``start`` does what ``TCPSite.start`` does with
    ``guard`` in front, reading the site's own settings (``_host``, ``_port``, ``_ssl_context``,
    ``_backlog``); the tests of the receiver run through it, so an aiohttp upgrade that moves them fails
    there first.
    """

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard,
                 ssl_context: Any = None, ssl_handshake_timeout: float | None = None, backlog: int = 1024) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)
        self._guard = guard
        self._handshake_timeout = ssl_handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner (skips TCPSite's own listen)
        self._guard.inner = self._runner.server
        loop = asyncio.get_running_loop()
        if self._ssl_context is None:
            server = await loop.create_server(self._guard, self._host, self._port, backlog=self._backlog)
        else:  # a TLS handshake is bounded too (asyncio's default is 60 s)
            server = await loop.create_server(self._guard, self._host, self._port, backlog=self._backlog,
                                              ssl=self._ssl_context, ssl_handshake_timeout=self._handshake_timeout)
        self._server = server
        sockets = server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown peer"
