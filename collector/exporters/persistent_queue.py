"""The queues behind an exporter's ``sending_queue``: in memory, or on disk (``storage``).

Both hold at most ``capacity`` waiting batches and refuse more with :class:`asyncio.QueueFull`.

:class:`PersistentQueue` writes each batch to its own file (``<seq>.batch``: a small header with the
span count, then the request's wire bytes) before :meth:`~PersistentQueue.put` returns: written to a
temporary name, fsynced when configured, then renamed, so a crash leaves either the whole batch or
nothing. What the receiver acknowledged therefore survives SIGKILL (and, with ``fsync``, power loss).
At open, the files left by the previous run are loaded first, in order, even beyond ``capacity``
(they were accepted once). A file is deleted only when its batch was sent or given up for good. All
file IO runs on one dedicated thread, so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import struct
from pathlib import Path
from typing import Protocol

from collector.model import SpanBatch

_HEADER = struct.Struct(">4sI")
_MAGIC = b"TTQ1"
_SUFFIX = ".batch"


class QueueEntry:
    """A batch taken from a queue; hand it back to :meth:`BatchQueue.done` when finished."""

    __slots__ = ("batch", "seq")

    def __init__(self, batch: SpanBatch, seq: int | None = None) -> None:
        self.batch = batch
        self.seq = seq


class BatchQueue(Protocol):
    maxsize: int
    persistent: bool

    def qsize(self) -> int: ...

    async def put(self, batch: SpanBatch) -> None: ...

    async def get(self) -> QueueEntry: ...

    async def done(self, entry: QueueEntry) -> None: ...

    async def join(self) -> None: ...

    def take_all_nowait(self) -> list[SpanBatch]: ...

    async def close(self) -> None: ...


class MemoryQueue:
    """A bounded ``asyncio.Queue`` of batches."""

    __slots__ = ("_queue", "maxsize", "persistent")

    def __init__(self, capacity: int) -> None:
        self._queue: asyncio.Queue[SpanBatch] = asyncio.Queue(maxsize=capacity)
        self.maxsize = capacity
        self.persistent = False

    def qsize(self) -> int:
        return self._queue.qsize()

    async def put(self, batch: SpanBatch) -> None:
        self._queue.put_nowait(batch)

    async def get(self) -> QueueEntry:
        return QueueEntry(await self._queue.get())

    async def done(self, entry: QueueEntry) -> None:
        self._queue.task_done()

    async def join(self) -> None:
        await self._queue.join()

    def take_all_nowait(self) -> list[SpanBatch]:
        out = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
            self._queue.task_done()
        return out

    async def close(self) -> None:
        return None


class PersistentQueue:
    """A queue of batches kept as files in ``directory``. Call :meth:`open` before use."""

    __slots__ = ("_cond", "_directory", "_fsync", "_io", "_logger", "_next_seq", "_pending_puts", "_ready",
                 "_unfinished", "maxsize", "persistent", "recovered_spans")

    def __init__(self, directory: Path, capacity: int, *, fsync: bool, logger: logging.Logger) -> None:
        self._directory = directory
        self._fsync = fsync
        self._logger = logger
        self.maxsize = capacity
        self.persistent = True
        self._ready: collections.deque[QueueEntry] = collections.deque()
        self._cond = asyncio.Condition()
        self._next_seq = 0
        self._pending_puts = 0
        self._unfinished = 0  # entries put (or recovered) and not yet done
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        self.recovered_spans = 0

    async def _run_io(self, fn: object, *args: object) -> object:
        if self._io is None:
            raise RuntimeError("persistent queue is not open")
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)  # type: ignore[arg-type]

    async def open(self) -> int:
        """Create the directory if needed and load the batches a previous run left; returns their count."""
        if self._io is None:
            self._io = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="persistent-queue")
        loaded = await self._run_io(self._load_all)
        assert isinstance(loaded, list)
        for seq, span_count, payload in loaded:
            self._ready.append(QueueEntry(SpanBatch.from_bytes(payload, span_count), seq))
            self._next_seq = max(self._next_seq, seq + 1)
            self._unfinished += 1
            self.recovered_spans += span_count
        return len(loaded)

    def _load_all(self) -> list[tuple[int, int, bytes]]:
        self._directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        out: list[tuple[int, int, bytes]] = []
        for path in sorted(self._directory.iterdir()):
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)  # an interrupted write: never acknowledged
                continue
            if path.suffix != _SUFFIX or not path.stem.isdigit():
                continue
            data = path.read_bytes()
            if len(data) < _HEADER.size or data[:4] != _MAGIC:
                self._logger.error("Persistent queue %s: %s is not a queued batch; moved aside",
                                   self._directory, path.name)
                path.rename(path.with_suffix(".corrupt"))
                continue
            _, span_count = _HEADER.unpack_from(data)
            out.append((int(path.stem), span_count, data[_HEADER.size:]))
        out.sort()
        return out

    def qsize(self) -> int:
        return len(self._ready)

    async def put(self, batch: SpanBatch) -> None:
        """Write the batch to disk, then queue it. Raises QueueFull when ``maxsize`` batches wait."""
        if len(self._ready) + self._pending_puts >= self.maxsize:
            raise asyncio.QueueFull
        seq = self._next_seq
        self._next_seq += 1
        self._pending_puts += 1
        try:
            await self._run_io(self._write, seq, batch.span_count, batch.to_bytes())
        finally:
            self._pending_puts -= 1
        self._unfinished += 1
        async with self._cond:
            self._ready.append(QueueEntry(batch, seq))
            self._cond.notify()

    def _path(self, seq: int) -> Path:
        return self._directory / f"{seq:020d}{_SUFFIX}"

    def _write(self, seq: int, span_count: int, payload: bytes) -> None:
        final = self._path(seq)
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(_HEADER.pack(_MAGIC, span_count))
            f.write(payload)
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(tmp, final)
        if self._fsync:
            fd = os.open(self._directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    async def get(self) -> QueueEntry:
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._ready))
            return self._ready.popleft()

    async def done(self, entry: QueueEntry) -> None:
        """The entry's batch was sent or given up for good: delete its file."""
        try:
            if entry.seq is not None:
                await self._run_io(self._remove, entry.seq)
        finally:
            self._unfinished -= 1
            if self._unfinished == 0:
                async with self._cond:
                    self._cond.notify_all()

    def _remove(self, seq: int) -> None:
        self._path(seq).unlink(missing_ok=True)

    async def join(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self._unfinished == 0)

    def take_all_nowait(self) -> list[SpanBatch]:
        """Forget the waiting entries (their files stay on disk for the next run)."""
        out = [e.batch for e in self._ready]
        self._unfinished -= len(self._ready)
        self._ready.clear()
        return out

    async def close(self) -> None:
        io, self._io = self._io, None
        if io is not None:
            io.shutdown(wait=False)


__all__ = ["BatchQueue", "MemoryQueue", "PersistentQueue", "QueueEntry"]
