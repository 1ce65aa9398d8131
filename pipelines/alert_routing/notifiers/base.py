"""What every receiver shares: a bounded outbox, one sender task, a rate limit, retry with backoff.

The grouping engine hands a :class:`Notification` to :meth:`Notifier.enqueue`, which never blocks:
when the outbox holds ``outbox_size`` notifications the **oldest** is dropped (a newer notification
about the same incident carries the newer state) and counted as ``status="dropped"``.

One sender task per receiver sends in order (a group's resolve never overtakes its trigger). Each
attempt waits for the rate limiter (asyncio-throttle), is bounded by ``timeout``, and its failure is
retried when retryable (429, 408, 5xx, timeouts, connection errors) with jittered exponential backoff;
a server's ``Retry-After`` is honoured when longer (up to a cap). A notification is given up
(``status="failed"``) on a permanent error or once ``retry.max_elapsed_time`` would be exceeded.

Each receiver has a circuit breaker (``circuit_breaker``, :mod:`collector.exporters.circuit_breaker`):
after ``failure_threshold`` retryable failures in a row no request goes out for ``open_duration``, the
notifications wait in the outbox (time spent waiting is not retry time), then a probe tests the receiver.

Secrets stay home: redirects are followed only to the same origin (scheme, host, port), at most
``MAX_REDIRECTS`` times; a redirect elsewhere is not followed (neither body nor headers go there) and the
notification fails (collector/exporters/redirect.py). Logs name the receiver's origin only, and client
errors are scrubbed of the receiver's URL, headers and keys.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import email.utils
import json
import logging
import time
from typing import Any, ClassVar

import aiohttp
from asyncio_throttle.throttler import Throttler

from collector import TraceTriageError
from collector.auth import ClientAuthenticator
from collector.config import Opaque, scrub
from collector.exporters.circuit_breaker import CircuitBreaker, Permit
from collector.exporters.helper import RETRY_AFTER_CAP, Backoff
from collector.exporters.redirect import REDIRECT_STATUSES, RedirectRefused, follow, origin
from pipelines.alert_routing.alerts import Notification
from pipelines.alert_routing.config import ReceiverConfig
from pipelines.alert_routing.metrics import AlertMetrics

JSON_HEADERS = {"Content-Type": "application/json"}
ERROR_BODY_PREVIEW = 200
DROP_LOG_INTERVAL = 10.0  # seconds between warnings about a full outbox (every drop is counted)


class NotifyError(TraceTriageError):
    """One attempt to deliver a notification failed; ``retriable`` says whether trying again may help."""

    def __init__(self, message: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class Notifier(abc.ABC):
    """One receiver: outbox + sender task. Subclasses say how a notification becomes an HTTP request."""

    kind: ClassVar[str]

    __slots__ = (
        "_breaker", "_client_auth", "_closed", "_config", "_drop_logged_at", "_dropped_unlogged", "_idle",
        "_in_flight", "_logger",
        "_m_dropped", "_m_failed", "_m_outbox", "_m_sent", "_outbox", "_ready", "_session", "_task", "_throttler",
        "name",
    )

    def __init__(self, config: ReceiverConfig, metrics: AlertMetrics, logger: logging.Logger) -> None:
        self.name = config.name
        self._config = config
        self._logger = logger
        self._outbox: collections.deque[Notification] = collections.deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is queued or being sent
        self._idle.set()
        self._in_flight: Notification | None = None
        self._throttler = Throttler(rate_limit=config.rate_limit.rate, period=float(config.rate_limit.period))
        self._session: aiohttp.ClientSession | None = None
        self._client_auth: ClientAuthenticator | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._drop_logged_at = float("-inf")
        self._dropped_unlogged = 0
        self._m_sent = metrics.sent.labels(self.name, "sent")
        self._m_failed = metrics.sent.labels(self.name, "failed")
        self._m_dropped = metrics.sent.labels(self.name, "dropped")
        self._m_outbox = metrics.outbox.labels(self.name)
        self._m_outbox.set(0)
        self._breaker: CircuitBreaker | None = None
        if config.circuit_breaker.enabled:
            transitions = metrics.circuit_transitions
            self._breaker = CircuitBreaker(
                config.circuit_breaker, what=f"receiver {self.name}", logger=logger,
                state_gauge=metrics.circuit_state.labels(self.name),
                transitions=lambda to: transitions.labels(self.name, to),
            )

    # -- what a receiver kind defines ---------------------------------------------------------------------

    @abc.abstractmethod
    def render(self, notification: Notification) -> tuple[str, dict[str, Any]]:
        """The URL to POST to and the JSON body for one notification."""

    def headers(self) -> dict[str, str]:
        return JSON_HEADERS

    def secrets(self) -> list[Opaque]:
        """The receiver's secrets (its URL, header values, keys), scrubbed from every error it logs."""
        cfg = getattr(self._config, self.kind, None)
        out: list[Opaque] = []
        for value in vars(cfg).values() if cfg is not None and hasattr(cfg, "__dict__") else ():
            if isinstance(value, Opaque):
                out.append(value)
            elif isinstance(value, dict):
                out.extend(v for v in value.values() if isinstance(v, Opaque))
        return out

    def describe(self) -> dict[str, Any]:
        """For the status page: name, kind and destination, with every secret redacted (the URL's path and
        password where they are the credential; a routing key only as whether one is set)."""
        cfg = getattr(self._config, self.kind, None)
        url = getattr(cfg, "url", None) or getattr(cfg, "webhook_url", None)
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "destination": str(url) if url else "",
                               "pending": self.pending}
        key = getattr(cfg, "routing_key", None)
        if isinstance(key, Opaque):
            out["routing_key"] = str(key) if key else "the team's key from the catalog"
        return out

    # -- outbox -------------------------------------------------------------------------------------------

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    @property
    def pending(self) -> int:
        """Notifications queued or being sent."""
        return len(self._outbox) + (self._in_flight is not None)

    def enqueue(self, notification: Notification) -> None:
        """Queue a notification; never blocks (a full outbox drops its oldest entry)."""
        if self._closed:
            self._m_dropped.inc()
            self._logger.warning("receiver %s is shut down: notification for group %s dropped",
                                 self.name, notification.group_key)
            return
        if len(self._outbox) >= self._config.outbox_size:
            old = self._outbox.popleft()
            self._m_dropped.inc()
            self._dropped_unlogged += 1
            now = time.monotonic()
            if now - self._drop_logged_at >= DROP_LOG_INTERVAL:
                self._logger.warning(
                    "receiver %s: outbox full (%d), dropped the oldest notification (group %s); %d dropped since "
                    "the last report", self.name, self._config.outbox_size, old.group_key, self._dropped_unlogged,
                )
                self._drop_logged_at = now
                self._dropped_unlogged = 0
        self._outbox.append(notification)
        self._m_outbox.set(len(self._outbox))
        self._idle.clear()
        self._ready.set()

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self, session: aiohttp.ClientSession,
                    client_auth: ClientAuthenticator | None = None) -> asyncio.Task[None]:
        """Start the sender task; with ``client_auth`` every request carries its credentials (the
        receiver's ``auth``)."""
        self._session = session
        self._client_auth = client_auth
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"alert_routing-receiver {self.name}")
        return self._task

    def close(self) -> None:
        """Take no more notifications (those offered later are counted as dropped). With the circuit open
        and notifications waiting, the receiver is probed at once: they are dropped at the shutdown deadline."""
        self._closed = True
        if self.pending and self._breaker is not None and self._breaker.half_open_now():
            self._logger.info("receiver %s: shutting down with the circuit open, probing it now", self.name)

    async def wait_idle(self) -> None:
        """Until the outbox is empty and nothing is being sent (or the sender task has ended)."""
        task = self._task
        if task is None or task.done():
            return
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait([idle, task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()

    async def stop(self) -> int:
        """Stop the sender; returns the notifications abandoned (queued or in flight, counted as dropped).
        Idempotent."""
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        abandoned = self.pending
        if abandoned:
            self._m_dropped.inc(abandoned)
            self._outbox.clear()
            self._in_flight = None
            self._m_outbox.set(0)
            self._idle.set()
        return abandoned

    async def _run(self) -> None:
        while True:
            if not self._outbox:
                self._idle.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            notification = self._outbox.popleft()
            self._m_outbox.set(len(self._outbox))
            self._in_flight = notification
            await self._deliver(notification)
            self._in_flight = None

    # -- sending ------------------------------------------------------------------------------------------

    async def _deliver(self, notification: Notification) -> bool:
        """Send with retry; count and log the outcome. True once sent."""
        try:
            url, body = self.render(notification)
            data = json.dumps(body).encode()
        except (NotifyError, ValueError, TypeError, KeyError) as e:
            self._m_failed.inc()
            self._logger.error("receiver %s: cannot build the notification for group %s: %s",
                               self.name, notification.group_key, e)
            return False
        retry = self._config.retry
        backoff = Backoff(retry)
        started = time.monotonic()
        attempts = 0
        breaker = self._breaker
        while True:
            attempts += 1
            permit: Permit | None = None
            if breaker is not None and (permit := breaker.try_acquire()) is None:
                permit, waited = await breaker.acquire()
                started += waited  # waiting out an open circuit is not retry time
            try:
                await self._throttler.acquire()  # type: ignore[no-untyped-call]
                await self._post(url, data)
            except NotifyError as err:
                if breaker is not None and permit is not None:
                    breaker.record(permit, ok=not err.retriable)
                if not err.retriable or not retry.enabled:
                    return self._give_up(notification, err, "the error is not retryable"
                                         if not err.retriable else "retry is disabled")
                if breaker is not None and breaker.is_open:
                    self._logger.info("receiver %s: sending group %s failed, waiting for the circuit to half-open: "
                                      "%s", self.name, notification.group_key, err)
                    continue  # the breaker's wait replaces the backoff
                delay = backoff.next_delay()
                if err.retry_after is not None and err.retry_after > 0:
                    delay = max(delay, min(err.retry_after, max(RETRY_AFTER_CAP, float(retry.max_interval))))
                elapsed = time.monotonic() - started
                if retry.max_elapsed_time > 0 and elapsed + delay > retry.max_elapsed_time:
                    return self._give_up(notification, err, f"gave up after {attempts} attempts in {elapsed:.1f}s")
                self._logger.info("receiver %s: sending group %s failed, retrying in %.3fs: %s",
                                  self.name, notification.group_key, delay, err)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                if breaker is not None and permit is not None:
                    breaker.release(permit)
                raise
            if breaker is not None and permit is not None:
                breaker.record(permit, ok=True)
            self._m_sent.inc()
            self._logger.debug("receiver %s: sent %s notification for group %s", self.name,
                               notification.status, notification.group_key)
            return True

    def _give_up(self, notification: Notification, err: NotifyError, why: str) -> bool:
        self._m_failed.inc()
        self._logger.error("receiver %s: %s notification for group %s not delivered, %s: %s",
                           self.name, notification.status, notification.group_key, why, err)
        return False

    async def _post(self, url: str, data: bytes) -> None:
        session = self._session
        if session is None:
            raise NotifyError(f"receiver {self.name} is not started", retriable=True, retry_after=1.0)
        where = _origin_of(url)  # never the full URL: userinfo, and Slack's path, are secrets
        timeout = float(self._config.timeout)
        headers = self.headers()
        credentials: list[str] = []
        if self._client_auth is not None:  # read per request: a rotated token goes out at once
            extra = self._client_auth.client_headers()
            credentials = list(extra.values())
            headers = {**headers, **extra}
        hops = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    async with session.post(url, data=data, headers=headers, allow_redirects=False) as resp:
                        status = resp.status
                        if status in REDIRECT_STATUSES:
                            hops += 1
                            url = follow(url, resp.headers.get("Location"), hops)  # same origin only
                            continue
                        if 200 <= status < 300:
                            await resp.read()
                            return
                        preview = (await resp.content.read(ERROR_BODY_PREVIEW)).decode("utf-8", "replace")
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        break
        except RedirectRefused as e:
            raise NotifyError(str(e), retriable=False) from None
        except TimeoutError:
            raise NotifyError(f"{where} did not answer within {timeout:g}s", retriable=True) from None
        except (aiohttp.ClientError, OSError) as e:
            # Never the exception's repr: aiohttp's may carry the request's URL and headers.
            text = scrub(f"{type(e).__name__}: {e}", [*self.secrets(), *credentials, url])
            raise NotifyError(f"cannot reach {where}: {text}", retriable=True) from None
        retriable = status in (408, 429) or status >= 500
        preview = scrub(preview, [*self.secrets(), *credentials])
        raise NotifyError(f"{where} answered HTTP {status}: {preview!r}", retriable=retriable,
                          retry_after=retry_after)


def _origin_of(url: str) -> str:
    try:
        scheme, host, port = origin(url)
    except ValueError:
        return "the receiver"
    if not host:
        return "the receiver"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
