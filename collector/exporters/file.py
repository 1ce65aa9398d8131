"""The ``file`` exporter: appends batches to a local file, as contrib's fileexporter.

``format: json`` writes one OTLP/JSON ``ExportTraceServiceRequest`` per line; ``format: proto`` writes
each request's wire bytes preceded by their length as a 4-byte big-endian integer. ``append: false``
truncates the file at start; with ``rotation`` the file is continued and rotated when full
(:mod:`collector.exporters.file_rotation`). All file IO runs on one dedicated writer thread (so writes keep their
order and never block the event loop); the buffer is flushed every ``flush_interval`` (0: after every
write) and at shutdown. The queue is disabled by default so that a write error reaches the caller.

The output is guarded (options of our own: contrib's exporter has neither): a symbolic link at ``path``
is refused unless ``follow_symlinks: true``, files the exporter creates (the output and, with
``rotation``, each new file) get ``file_mode`` (``"0600"`` by default), and ``append: false`` truncates
the file just before the first record is written, so a start-up that fails (this exporter's or any other
component's) leaves an existing file as it was.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import stat
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import BufferedIOBase
from typing import ClassVar, Literal, Protocol

from collector.component import Factory, Host, Kind, Settings
from collector.config.schema import Duration, field
from collector.consumer import Capabilities
from collector.errors import ComponentStartError, ConsumerError, RefusedError
from collector.exporters.file_rotation import RotatingFile, RotationConfig, SymlinkRefused, open_output
from collector.exporters.helper import QueueConfig, QueuedRetrySender, RetryConfig
from collector.model import SpanBatch
from collector.otlpjson import encode_request

_LENGTH = struct.Struct(">I")
DEFAULT_FLUSH_INTERVAL = Duration(1.0)
NO_QUEUE = QueueConfig(enabled=False)
NO_RETRY = RetryConfig(enabled=False)
_MODE_RE = re.compile(r"^0?[0-7]{3}$")


@dataclass(frozen=True)
class FileConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {
        "compression": "", "group_by": "", "encoding": "use format: json or proto",
    }

    path: str = field(min_len=1)
    format: Literal["json", "proto"] = "json"
    append: bool = False
    flush_interval: Duration = field(DEFAULT_FLUSH_INTERVAL, ge=0)
    rotation: RotationConfig | None = field(None, present_enables=True)
    sending_queue: QueueConfig = NO_QUEUE
    retry_on_failure: RetryConfig = NO_RETRY
    file_mode: str = "0600"
    follow_symlinks: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.append and self.rotation is not None:
            yield ("", "append and rotation enabled at the same time is not supported (as in the OTel Collector)")
        if not _MODE_RE.match(self.file_mode):
            yield ("file_mode", f"must be octal permission bits such as \"0600\" or \"0640\", got {self.file_mode!r}")

    @property
    def mode(self) -> int:
        """``file_mode`` as a number."""
        return int(self.file_mode, 8)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def encode_record(batch: SpanBatch, fmt: str) -> bytes:
    """One record of the file: a JSON line or a length-prefixed protobuf request."""
    if fmt == "proto":
        payload = batch.to_bytes()
        return _LENGTH.pack(len(payload)) + payload
    return encode_request(batch.request) + b"\n"


class FileExporter:
    # Its sender logs what a shutdown cut short by the deadline leaves behind (on disk or lost).
    reports_held_data = True
    __slots__ = (
        "_config", "_dirty", "_file", "_flusher", "_io", "_logger", "_name", "_sender", "_stopped", "_truncate",
        )

    def __init__(self, settings: Settings, config: FileConfig) -> None:
        self._config = config
        self._logger = settings.logger
        self._name = str(settings.id)
        self._file: _Sink | None = None
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._dirty = False
        self._stopped = False
        self._truncate = False  # truncate before the first record (append: false without rotation)
        self._sender = QueuedRetrySender(
            settings, self._write, queue=config.sending_queue, retry=config.retry_on_failure, timeout=0
        )

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        if self._file is not None or self._stopped:
            return
        io = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self._name}-io")
        loop = asyncio.get_running_loop()
        try:
            self._file = await loop.run_in_executor(io, _open, self._config)
        except SymlinkRefused as e:
            io.shutdown(wait=False)
            raise ComponentStartError(
                self._name, f"path {self._config.path!r} is a symbolic link: not followed unless "
                            f"follow_symlinks: true (nothing was written)"
            ) from e
        except OSError as e:
            io.shutdown(wait=False)
            raise ComponentStartError(
                self._name, f"cannot open {self._config.path!r} for writing: {e.strerror or e}"
            ) from e
        self._io = io
        self._truncate = not self._config.append and self._config.rotation is None
        try:
            await self._sender.start(host)
        except BaseException:
            await self._close()
            raise
        if self._config.flush_interval > 0:
            self._flusher = asyncio.create_task(self._flush_loop(), name=f"{self._name}-flush")

    async def consume_traces(self, batch: SpanBatch) -> None:
        await self._sender.consume_traces(batch)

    async def _write(self, batch: SpanBatch) -> None:
        if self._file is None or self._io is None:
            raise RefusedError(f"file exporter {self._name} is not running")
        fmt = self._config.format
        if fmt == "json":
            _ = batch.request  # decode on the loop; the JSON encoding then runs on the writer thread
        flush_now = self._config.flush_interval <= 0
        # The old content goes with the first record (one writer thread: later records come after it).
        truncate, self._truncate = self._truncate, False
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._io, _write_record, self._file, batch, fmt, flush_now, truncate)
        except OSError as e:
            # The path and the system's words are for the operator's log; the client learns only that it failed.
            self._logger.error("File exporter %s: writing %s failed: %s", self._name, self._config.path, e)
            raise ConsumerError(f"file exporter {self._name} cannot write its output", retriable=True) from None
        self._dirty = not flush_now

    async def _flush_loop(self) -> None:
        interval = float(self._config.flush_interval)
        while True:
            await asyncio.sleep(interval)
            if self._dirty:
                self._dirty = False
                await self._flush()

    async def _flush(self) -> None:
        if self._file is None or self._io is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._io, self._file.flush)
        except OSError as e:
            self._logger.error("File exporter %s: flushing %s failed: %s", self._name, self._config.path, e)

    async def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            await self._sender.drain()
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
                self._flusher = None
            await self._close()

    async def _close(self) -> None:
        file, io = self._file, self._io
        self._file = self._io = None
        if io is None or file is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(io, _close, file)
        except OSError as e:
            self._logger.error("File exporter %s: closing %s failed: %s", self._name, self._config.path, e)
        finally:
            io.shutdown(wait=False)


def _open(config: FileConfig) -> _Sink:
    if config.rotation is not None:
        return RotatingFile(config.path, config.rotation, mode=config.mode, follow_symlinks=config.follow_symlinks)
    # Never truncated here: start() truncates once everything else has started.
    return open_output(config.path, append=config.append, mode=config.mode, follow_symlinks=config.follow_symlinks)


def _write_record(file: _Sink, batch: SpanBatch, fmt: str, flush: bool, truncate: bool = False) -> None:
    if truncate and isinstance(file, BufferedIOBase) and stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.truncate(0)  # a device (/dev/stdout) has nothing to truncate
    file.write(encode_record(batch, fmt))
    if flush:
        file.flush()


def _close(file: _Sink) -> None:
    try:
        file.flush()
    finally:
        file.close()


def create(settings: Settings, config: FileConfig) -> FileExporter:
    return FileExporter(settings, config)


factory = Factory("file", Kind.EXPORTER, FileConfig, create, description="Writes batches to a local file.")

__all__ = ["FileConfig", "FileExporter", "encode_record", "factory"]
