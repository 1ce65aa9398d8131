"""``bearertokenauth`` extension: static bearer tokens, as contrib's bearertokenauthextension.

```yaml
extensions:
  bearertokenauth/ingest:
    scheme: Bearer                  # "" sends / expects the token alone
    header: Authorization
    token: ${env:INGEST_TOKEN}      # or tokens: [...], or filename: /run/secrets/ingest.token
```

As a **server** authenticator (a receiver's ``auth``) a request is let in when its ``header`` is exactly
``"<scheme> <token>"`` for one of the tokens (compared in constant time). As a **client** authenticator (an
exporter's or an alert receiver's ``auth``) every request carries ``"<scheme> <first token>"``.

``filename`` wins over ``token`` / ``tokens`` (as upstream, with a warning). The file holds one token a line
(blank lines are skipped); it is checked for changes every :data:`FILE_CHECK_INTERVAL` seconds and re-read
when its modification time, size or inode changes, so a rotated token is accepted (and sent) within about
a second and the old one refused. A file that cannot be read at start stops the start; one that cannot be
read later, or holds no token, keeps the tokens read before (logged and counted in
``tracetriage_auth_token_file_reloads_total{result="failed"}``).
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from collector.auth import Denied
from collector.component import Factory, Host, Kind, Settings
from collector.config.opaque import NO_SECRET, Opaque
from collector.errors import ComponentStartError

FILE_CHECK_INTERVAL = 1.0
"""Seconds between checks of ``filename`` for a new token."""
REALM = "tracetriage"


@dataclass(frozen=True)
class BearerTokenAuthConfig:
    header: str = "Authorization"
    scheme: str = "Bearer"
    token: Opaque = NO_SECRET
    tokens: tuple[Opaque, ...] = ()
    filename: str = ""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.token and not self.tokens and not self.filename:
            yield "", "no bearer token provided: give token, tokens or filename"
        if self.token and self.tokens:
            yield "tokens", "either tokens or token should be provided, not both"
        for i, token in enumerate(self.tokens):
            if not token:
                yield f"tokens[{i}]", "must not be empty"
        if not self.header.strip() or any(c in self.header for c in ": \t\r\n"):
            yield "header", f"must be an HTTP header name such as Authorization, got {self.header!r}"
        if any(c in self.scheme for c in " \t\r\n"):
            yield "scheme", f"must be one word such as Bearer (or empty), got {self.scheme!r}"


def read_tokens(path: str) -> list[str]:
    """The tokens of a token file, one a line, blank lines skipped. Raises OSError / ValueError (no token)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"token file {path!r} is not UTF-8 text") from e
    tokens = [line.strip() for line in text.splitlines() if line.strip()]
    if not tokens:
        raise ValueError(f"token file {path!r} holds no token")
    return tokens


def _file_stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


class BearerTokenAuth:
    """Server and client authenticator; the tokens in force are swapped whole when the file changes."""

    def __init__(self, settings: Settings, config: BearerTokenAuthConfig) -> None:
        self.id = settings.id
        self._config = config
        self._logger = settings.logger
        self._header = config.header.strip().lower()
        self._header_name = config.header.strip()
        self._values: tuple[bytes, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._stamp: tuple[int, int, int] | None = None
        reloads = settings.telemetry.counter(
            "tracetriage_auth_token_file_reloads",
            "Reads of a bearertokenauth token file after it changed (result=ok, or failed: the tokens read before "
            "stay in force).", ("extension", "result"))
        self._reload_ok = reloads.labels(extension=str(self.id), result="ok")
        self._reload_failed = reloads.labels(extension=str(self.id), result="failed")
        if not config.filename:
            self._set([t.reveal() for t in (config.tokens or (config.token,))])

    def _set(self, tokens: list[str]) -> None:
        scheme = self._config.scheme
        self._values = tuple((f"{scheme} {t}" if scheme else t).encode() for t in tokens)

    @property
    def challenge(self) -> str:
        scheme = self._config.scheme or "Bearer"
        return f'{scheme} realm="{REALM}"'

    async def authenticate(self, headers: Mapping[str, str]) -> Denied | None:
        sent = headers.get(self._header)
        if not sent:
            return Denied("missing_credentials", f"missing or empty {self._header_name} header")
        given = sent.strip().encode("utf-8", "surrogateescape")
        ok = False
        for value in self._values:  # every value compared, in constant time
            ok |= hmac.compare_digest(given, value)
        if not ok:
            return Denied("invalid_credentials", "scheme or token does not match")
        return None

    def client_headers(self) -> dict[str, str]:
        values = self._values
        return {self._header_name: values[0].decode()} if values else {}

    async def start(self, host: Host) -> None:
        filename = self._config.filename
        if not filename or self._task is not None:
            return
        if self._config.token or self._config.tokens:
            self._logger.warning("bearertokenauth %s: a filename is given, so the configured token is ignored",
                                 self.id)
        try:
            self._stamp = await asyncio.to_thread(_file_stamp, filename)
            self._set(await asyncio.to_thread(read_tokens, filename))
        except (OSError, ValueError) as e:
            raise ComponentStartError(f"extension {self.id}", f"cannot read the token file: {e}") from e
        self._task = asyncio.create_task(self._watch(filename), name=f"bearertokenauth {self.id} token file")
        host.watch(self._task, self._logger, f"extension {self.id}")

    async def _watch(self, filename: str) -> None:
        failing = False
        while True:
            await asyncio.sleep(FILE_CHECK_INTERVAL)
            try:
                stamp = await asyncio.to_thread(_file_stamp, filename)
                if stamp == self._stamp:
                    continue
                tokens = await asyncio.to_thread(read_tokens, filename)
            except (OSError, ValueError) as e:
                self._reload_failed.inc()
                if not failing:
                    self._logger.warning("bearertokenauth %s: cannot read the changed token file (the tokens read "
                                         "before stay in force): %s", self.id, e)
                failing = True
                continue
            self._stamp = stamp
            self._set(tokens)
            self._reload_ok.inc()
            failing = False
            self._logger.info("bearertokenauth %s: token file %s re-read (%d token%s)", self.id, filename,
                              len(tokens), "" if len(tokens) == 1 else "s")

    async def shutdown(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def create(settings: Settings, config: BearerTokenAuthConfig) -> BearerTokenAuth:
    return BearerTokenAuth(settings, config)


factory = Factory(
    "bearertokenauth", Kind.EXTENSION, BearerTokenAuthConfig, create,
    description="Static bearer tokens: checks them on receivers, sends one from exporters (auth.authenticator).",
)

__all__ = ["FILE_CHECK_INTERVAL", "BearerTokenAuth", "BearerTokenAuthConfig", "factory", "read_tokens"]
