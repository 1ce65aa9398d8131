"""The ``file`` exporter's ``rotation``: a size-capped file with timestamped backups, as contrib's file
exporter rotates with the lumberjack library.

When the next record would take the file past ``max_megabytes`` (MiB), the file is renamed to
``<name>-<UTC time>.<ext>`` (``spans-2026-12-07T03-05-57.123.jsonl``; local time with ``localtime``) in
the same directory and a new file is started, so records are never split across files. After each
rotation, backups beyond the newest ``max_backups`` (0: keep all) and backups older than ``max_days``
(0: no age limit) are removed. An existing file is continued, as lumberjack does. Everything here runs
on the exporter's writer thread.

Every file is opened with :func:`open_output`: a symbolic link is refused unless ``follow_symlinks``,
and a file it creates gets exactly ``mode`` (0600 by default), whatever the umask.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from collector.config.schema import field

MIB = 1024 * 1024
_STAMP = "%Y-%m-%dT%H-%M-%S.%f"
DEFAULT_FILE_MODE = 0o600


class SymlinkRefused(OSError):
    """The output path is a symbolic link and ``follow_symlinks`` is off."""


def open_output(path: str | os.PathLike[str], *, append: bool, mode: int = DEFAULT_FILE_MODE,
                follow_symlinks: bool = False) -> IO[bytes]:
    """Open ``path`` for writing without truncating it (the caller truncates once its checks passed).

    A symbolic link at ``path`` raises :class:`SymlinkRefused` unless ``follow_symlinks`` (the link's
    target is not touched, not even created). A file this call creates gets ``mode`` exactly. With
    ``append`` every write goes to the end; without, writing starts at offset 0.
    """
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
        created = True
    except FileExistsError:
        created = False
        try:
            fd = os.open(path, flags)
        except OSError as e:
            if e.errno == errno.ELOOP and not follow_symlinks:
                raise SymlinkRefused(errno.ELOOP, "is a symbolic link, which is refused unless "
                                     "follow_symlinks: true", str(path)) from None
            raise
    try:
        if created:
            os.fchmod(fd, mode)  # exactly the configured mode, not masked by the umask
        return open(fd, "ab" if append else "wb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True)
class RotationConfig:
    max_megabytes: int = field(100, ge=0)  # 0 means the default, as in lumberjack
    max_days: int = field(0, ge=0)
    max_backups: int = field(100, ge=0)
    localtime: bool = False

    @property
    def max_bytes(self) -> int:
        return (self.max_megabytes or 100) * MIB


class RotatingFile:
    """An append-only file that rotates before a write would make it too large."""

    def __init__(self, path: str, config: RotationConfig, clock: Callable[[], float] = time.time, *,
                 mode: int = DEFAULT_FILE_MODE, follow_symlinks: bool = False) -> None:
        self._path = Path(path)
        self._config = config
        self._clock = clock
        self._mode = mode
        self._follow = follow_symlinks
        stem, ext = self._path.stem, self._path.suffix
        stamp = r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})"
        self._backup_re = re.compile(f"{re.escape(stem)}-{stamp}{re.escape(ext)}$")
        self._file: IO[bytes] = self._open()
        self._size = self._file.tell()

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self._config.max_bytes:
            self.rotate()
        self._file.write(data)
        self._size += len(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        try:
            self._file.flush()
        finally:
            self._file.close()

    def rotate(self) -> None:
        """Move the current file to a backup, start a new one, and prune old backups."""
        self.close()
        now = self._clock()
        backup = self._backup_path(now)
        while backup.exists():  # two rotations within a millisecond
            now += 0.001
            backup = self._backup_path(now)
        os.replace(self._path, backup)
        self._file = self._open()
        self._size = 0
        self.prune(now)

    def _open(self) -> IO[bytes]:
        return open_output(self._path, append=True, mode=self._mode, follow_symlinks=self._follow)

    def _stamp(self, when: float) -> str:
        moment = dt.datetime.fromtimestamp(when) if self._config.localtime else dt.datetime.fromtimestamp(when, dt.UTC)
        return moment.strftime(_STAMP)[:-3]

    def _backup_path(self, when: float) -> Path:
        return self._path.with_name(f"{self._path.stem}-{self._stamp(when)}{self._path.suffix}")

    def backups(self) -> list[tuple[float, Path]]:
        """The backups of this file, newest first, each with the time in its name."""
        out = []
        for entry in self._path.parent.iterdir():
            m = self._backup_re.match(entry.name)
            if m is None:
                continue
            moment = dt.datetime.strptime(m.group(1), _STAMP)
            if not self._config.localtime:
                moment = moment.replace(tzinfo=dt.UTC)
            out.append((moment.timestamp(), entry))
        out.sort(reverse=True)
        return out

    def prune(self, now: float) -> None:
        cfg = self._config
        for i, (when, path) in enumerate(self.backups()):
            too_many = cfg.max_backups and i >= cfg.max_backups
            too_old = cfg.max_days and when < now - cfg.max_days * 86400
            if too_many or too_old:
                path.unlink(missing_ok=True)


__all__ = ["DEFAULT_FILE_MODE", "RotatingFile", "RotationConfig", "SymlinkRefused", "open_output"]
