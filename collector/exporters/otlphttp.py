"""The ``otlphttp`` exporter: OTLP over HTTP (``POST <endpoint>/v1/traces``), as the OTel otlphttpexporter.

``encoding: proto`` posts the batch's wire bytes unchanged, ``json`` the OTLP/JSON form. Status 429,
502, 503 and 504 are retriable (``Retry-After``, in seconds or as an HTTP date, becomes the retry
hint), as are connection errors; any other 4xx/5xx is permanent and reported with the
``google.rpc.Status`` message of the body when it has one.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import ssl
import time
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.auth import AuthConfig, ClientAuthenticator, auth_ref, client_authenticator
from collector.component import ExtensionRef, Factory, Host, Kind, Settings
from collector.config.opaque import Opaque, has_userinfo, redact_url, scrub
from collector.config.schema import field
from collector.config.tls import TLSClientConfig
from collector.consumer import Capabilities
from collector.errors import ComponentStartError, ConsumerError, PermanentError, RefusedError
from collector.exporters.helper import ExporterBaseConfig, QueuedRetrySender, rejected_spans
from collector.exporters.redirect import REDIRECT_STATUSES, RedirectRefused, follow
from collector.model import SpanBatch
from collector.otlpjson import decode_response, encode_request

TRACES_PATH = "v1/traces"
RETRIABLE_STATUSES = frozenset({429, 502, 503, 504})
PROTO_CONTENT_TYPE = "application/x-protobuf"
JSON_CONTENT_TYPE = "application/json"
# Compress big payloads on a worker thread so the event loop keeps moving.
_THREAD_COMPRESS_BYTES = 64 * 1024
_MAX_ERROR_BODY = 64 * 1024
DEFAULT_TLS = TLSClientConfig()


@dataclass(frozen=True, kw_only=True)
class OTLPHTTPConfig(ExporterBaseConfig):
    endpoint: str = ""
    traces_endpoint: str = ""
    tls: TLSClientConfig = DEFAULT_TLS
    headers: dict[str, Opaque] = field(default_factory=dict)
    compression: Literal["gzip", "none", ""] = "gzip"
    encoding: Literal["proto", "json"] = "proto"
    auth: AuthConfig | None = None

    def extension_refs(self) -> list[ExtensionRef]:
        return auth_ref("auth", self.auth)

    def validate(self) -> list[tuple[str, str]]:
        if not self.endpoint and not self.traces_endpoint:
            return [("endpoint", "is required (or traces_endpoint)")]
        issues = []
        for key in ("endpoint", "traces_endpoint"):
            url = getattr(self, key)
            if url and (problem := _url_problem(url)):
                issues.append((key, problem))
        auth = next((k for k in self.headers if k.lower() == "authorization"), None)
        if auth is not None and has_userinfo(self.url):
            issues.append((f"headers.{auth}", "the endpoint already carries credentials (user:password@): "
                                              "give one or the other"))
        return issues

    @property
    def url(self) -> str:
        """The URL traces are posted to."""
        if self.traces_endpoint:
            return self.traces_endpoint
        sep = "" if self.endpoint.endswith("/") else "/"
        return self.endpoint + sep + TRACES_PATH


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as e:
        return f"invalid URL {redact_url(url)!r}: {e}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got {redact_url(url)!r}"
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def status_message(body: bytes, content_type: str) -> str:
    """The message of a ``google.rpc.Status`` body (protobuf or JSON), else the start of the body text."""
    if not body:
        return ""
    if content_type.startswith(PROTO_CONTENT_TYPE):
        try:
            return str(status_pb2.Status.FromString(body).message)
        except DecodeError:
            pass
    elif content_type.startswith(JSON_CONTENT_TYPE):
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return str(doc["message"])
    return body[:512].decode("utf-8", "replace").strip()


def _json_body(request: ExportTraceServiceRequest, gzipped: bool) -> bytes:
    body = encode_request(request)
    return gzip.compress(body, 6) if gzipped else body


class OTLPHTTPExporter:
    # Its sender logs what a shutdown cut short by the deadline leaves behind (on disk or lost).
    reports_held_data = True
    __slots__ = ("_client_auth", "_config", "_headers", "_logger", "_name", "_sender", "_session", "_url")

    def __init__(self, settings: Settings, config: OTLPHTTPConfig) -> None:
        self._config = config
        self._logger = settings.logger
        self._name = str(settings.id)
        self._url = config.url
        headers = {k: v.reveal() for k, v in config.headers.items()}
        headers["Content-Type"] = PROTO_CONTENT_TYPE if config.encoding == "proto" else JSON_CONTENT_TYPE
        if config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        self._headers = headers
        self._client_auth: ClientAuthenticator | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sender = QueuedRetrySender.from_config(settings, self._export, config)

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        if self._session is not None or self._sender.closed:
            return
        if self._config.auth is not None:
            self._client_auth = client_authenticator(host, self._config.auth, f"exporter {self._name}")
        ssl_arg: ssl.SSLContext | bool = True
        if urlsplit(self._url).scheme == "https":
            try:
                ctx = replace(self._config.tls, insecure=False).ssl_context()
            except OSError as e:
                raise ComponentStartError(self._name, e) from e
            if ctx is not None:
                ssl_arg = ctx
        connector = aiohttp.TCPConnector(ssl=ssl_arg)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        await self._sender.start(host)

    async def consume_traces(self, batch: SpanBatch) -> None:
        await self._sender.consume_traces(batch)

    async def _body(self, batch: SpanBatch) -> bytes:
        gzipped = self._config.compression == "gzip"
        if self._config.encoding == "json":
            # JSON encoding is slow (json_format): decode on the loop, encode on a worker thread.
            return await asyncio.to_thread(_json_body, batch.request, gzipped)
        body = batch.to_bytes()
        if not gzipped:
            return body
        if len(body) >= _THREAD_COMPRESS_BYTES:
            return await asyncio.to_thread(gzip.compress, body, 6)
        return gzip.compress(body, 6)

    async def _export(self, batch: SpanBatch) -> int | None:
        session = self._session
        if session is None:
            raise RefusedError(f"otlphttp exporter {self._name} is not started")
        body = await self._body(batch)
        timeout = aiohttp.ClientTimeout(total=float(self._config.timeout) or None)
        url = self._url
        hops = 0
        headers = self._headers
        credentials: dict[str, str] = {}
        if self._client_auth is not None:  # read per request: a rotated token goes out at once
            credentials = self._client_auth.client_headers()
            headers = {**headers, **credentials}
        try:
            while True:
                async with session.post(url, data=body, headers=headers, timeout=timeout,
                                        allow_redirects=False) as resp:
                    if resp.status in REDIRECT_STATUSES:
                        hops += 1
                        url = follow(url, resp.headers.get("Location"), hops)  # same origin only
                        continue
                    if 200 <= resp.status < 300:
                        return self._partial_success(await resp.read(), resp.content_type, batch)
                    error_body = await resp.content.read(_MAX_ERROR_BODY)
                    raise self._error(resp, error_body)
        except RedirectRefused as e:
            raise PermanentError(str(e)) from None
        except aiohttp.ClientError as e:
            # Never the exception's repr: aiohttp's carries the request's headers (Authorization ...).
            text = scrub(f"{type(e).__name__}: {e}", [*self._config.headers.values(), *credentials.values(), url,
                                                      self._url])
            raise ConsumerError(f"POST {redact_url(self._url)} failed: {text}", retriable=True) from None

    def _error(self, resp: aiohttp.ClientResponse, body: bytes) -> ConsumerError:
        message = status_message(body, resp.content_type)
        text = f"HTTP {resp.status} {resp.reason or ''}".rstrip()
        if message:
            text += f": {message}"
        if resp.status in RETRIABLE_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            return ConsumerError(text, retriable=True, retry_after=retry_after)
        return PermanentError(text)

    def _partial_success(self, body: bytes, content_type: str, batch: SpanBatch) -> int | None:
        if not body:
            return None
        try:
            if content_type.startswith(PROTO_CONTENT_TYPE):
                response = ExportTraceServiceResponse.FromString(body)
            elif content_type.startswith(JSON_CONTENT_TYPE):
                response = decode_response(body)
            else:
                return None
        except (DecodeError, ValueError) as e:
            self._logger.debug("Exporter %s: unparseable response body ignored: %s", self._name, e)
            return None
        return rejected_spans(self._logger, self._name, response, batch)

    async def shutdown(self) -> None:
        try:
            await self._sender.drain()
        finally:
            session, self._session = self._session, None
            if session is not None:
                await session.close()


def create(settings: Settings, config: OTLPHTTPConfig) -> OTLPHTTPExporter:
    return OTLPHTTPExporter(settings, config)


# ``otlp_http`` is the OTel Collector's name for this exporter since v0.144; ``otlphttp`` remains an alias.
factory = Factory(
    "otlphttp", Kind.EXPORTER, OTLPHTTPConfig, create, description="Sends batches over OTLP/HTTP.",
    aliases=("otlp_http",),
)

__all__ = ["OTLPHTTPConfig", "OTLPHTTPExporter", "factory", "parse_retry_after", "status_message"]
