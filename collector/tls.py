"""TLS listeners whose certificate follows rotation: ``tls.reload_interval`` as in OTel's configtls.

Every ``reload_interval`` the listener looks at its ``cert_file``, ``key_file`` and ``client_ca_file``
(modification time, size, inode); when one changed, it reads them again and **new** handshakes present
the new certificate (connections already open keep theirs). Files that cannot be read, or a certificate
that does not match its key (a rotation caught half-written), are logged and counted as
``tracetriage_tls_certificate_reloads_total{result="failed"}``; the certificate in force stays, and the
files are tried again at the next interval. ``reload_interval: 0`` (the default) reads them once.

* HTTP listeners (aiohttp: the OTLP/HTTP receiver, ``health_check``) serve one ``ssl.SSLContext`` whose
  SNI callback, called on every handshake (with or without a server name), hands the handshake to the
  newest context. A background task checks the files.
* gRPC listeners use grpcio's dynamic server credentials: gRPC asks for the certificate configuration on
  each new handshake, and the files are checked then, at most once per ``reload_interval``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from typing import Any

import grpc

from collector.config.tls import TLSServerConfig, read_pem
from collector.errors import ComponentStartError
from collector.telemetry import Telemetry

Stamp = tuple[tuple[int, int, int] | None, ...]


def _stamp(config: TLSServerConfig) -> Stamp:
    out: list[tuple[int, int, int] | None] = []
    for path in (config.cert_file, config.key_file, config.client_ca_file):
        if not path:
            out.append(None)
            continue
        try:
            st = os.stat(path)
        except OSError:
            out.append((-1, -1, -1))
            continue
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class _Reloads:
    """The reload counters of one listener, and the log lines that go with them."""

    def __init__(self, telemetry: Telemetry | None, listener: str, logger: logging.Logger) -> None:
        self._listener = listener
        self._logger = logger
        self._ok: Any = None
        self._failed: Any = None
        if telemetry is not None:
            counter = telemetry.counter(
                "tracetriage_tls_certificate_reloads",
                "Certificates a TLS listener read again after its files changed (tls.reload_interval); "
                "result=failed: unreadable or not matching its key, the previous certificate stays.",
                ("listener", "result"))
            self._ok = counter.labels(listener=listener, result="ok")
            self._failed = counter.labels(listener=listener, result="failed")

    def ok(self) -> None:
        if self._ok is not None:
            self._ok.inc()
        self._logger.info("%s: TLS certificate files changed; new handshakes use the new certificate",
                          self._listener)

    def failed(self, error: BaseException) -> None:
        if self._failed is not None:
            self._failed.inc()
        self._logger.error("%s: cannot reload the TLS certificate (the previous one stays in use): %s",
                           self._listener, error)


class ReloadingSSLContext:
    """The server ``ssl.SSLContext`` of an HTTP listener, swapped for a new one when the files change."""

    def __init__(self, config: TLSServerConfig, listener: str, logger: logging.Logger,
                 telemetry: Telemetry | None = None) -> None:
        self._config = config
        self._reloads = _Reloads(telemetry, listener, logger)
        self._stamp = _stamp(config)
        self._current = config.ssl_context()  # raises OSError / ssl.SSLError: the listener does not start
        self.context = self._current
        if config.reload_interval > 0:
            self.context.sni_callback = self._pick
        self._task: asyncio.Task[None] | None = None

    def _pick(self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        current = self._current
        if current is not context:
            ssl_object.context = current

    def check(self) -> bool:
        """Read the files again if they changed (blocking: call off the loop). True when a new context is in
        force."""
        stamp = _stamp(self._config)
        if stamp == self._stamp:
            return False
        try:
            fresh = self._config.ssl_context()
        except (OSError, ssl.SSLError, ValueError) as e:
            self._reloads.failed(e)
            return False
        self._current = fresh
        self._stamp = stamp
        self._reloads.ok()
        return True

    def start(self) -> asyncio.Task[None] | None:
        """The background task that checks the files every ``reload_interval`` (None when it is 0)."""
        interval = float(self._config.reload_interval)
        if interval <= 0 or self._task is not None:
            return self._task
        self._task = asyncio.create_task(self._run(interval), name="tls certificate reload")
        return self._task

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.check)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def http_listener_tls(config: TLSServerConfig | None, component: str, listener: str, logger: logging.Logger,
                      telemetry: Telemetry | None = None) -> ReloadingSSLContext | None:
    """The context of an HTTP listener with ``tls`` (None without it; ``listener`` labels its reloads).
    Raises ComponentStartError naming ``component`` when the files do not make a certificate."""
    if config is None:
        return None
    try:
        return ReloadingSSLContext(config, listener, logger, telemetry)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise ComponentStartError(component, e) from e


class ReloadingGRPCCredentials:
    """grpcio server credentials whose certificate is read again when the files change."""

    def __init__(self, config: TLSServerConfig, listener: str, logger: logging.Logger,
                 telemetry: Telemetry | None = None) -> None:
        self._config = config
        self._reloads = _Reloads(telemetry, listener, logger)
        self._lock = threading.Lock()  # gRPC calls the fetcher from its own threads
        config.ssl_context()  # load with the ssl module first: clear errors for bad files or a key mismatch
        self._stamp = _stamp(config)
        self._checked = time.monotonic()
        initial = self._configuration()
        if config.reload_interval > 0:
            self.credentials = grpc.dynamic_ssl_server_credentials(
                initial, self._fetch, require_client_authentication=bool(config.client_ca_file))
        else:
            client_ca = read_pem(config.client_ca_file, "client CA") if config.client_ca_file else None
            self.credentials = grpc.ssl_server_credentials(
                [(read_pem(config.key_file, "TLS key"), read_pem(config.cert_file, "TLS certificate"))],
                root_certificates=client_ca, require_client_auth=client_ca is not None)

    def _configuration(self) -> Any:
        cfg = self._config
        client_ca = read_pem(cfg.client_ca_file, "client CA") if cfg.client_ca_file else None
        return grpc.ssl_server_certificate_configuration(
            [(read_pem(cfg.key_file, "TLS key"), read_pem(cfg.cert_file, "TLS certificate"))],
            root_certificates=client_ca)

    def _fetch(self) -> Any:
        """Called by gRPC on each new handshake: a new configuration when the files changed, else None."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked < float(self._config.reload_interval):
                return None
            self._checked = now
            stamp = _stamp(self._config)
            if stamp == self._stamp:
                return None
            try:
                self._config.ssl_context()  # the pair must load before gRPC gets it
                fresh = self._configuration()
            except (OSError, ssl.SSLError, ValueError) as e:
                self._reloads.failed(e)
                return None
            self._stamp = stamp
            self._reloads.ok()
            return fresh


__all__ = ["ReloadingGRPCCredentials", "ReloadingSSLContext", "http_listener_tls"]
