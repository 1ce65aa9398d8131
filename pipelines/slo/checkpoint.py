"""The ``slo`` stage's state on disk, through the ``file_storage`` extension: a restart or a rollout keeps a
28-day error budget and the burns in progress.

One JSON file per processor (``<directory>/processor_slo/state.json``), written whole to a temporary file
and renamed over the old one (fsynced when the extension says so), so a crash leaves the previous
checkpoint or the new one, never half of one. Per objective it holds the name, the fingerprint of what
is counted (selector and SLI), the buckets that have events and when each firing alert started. On
start the state of every objective with the same name and fingerprint is put back; buckets older than
their ring's span are left out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

VERSION = 1
FILE_NAME = "state.json"


class CheckpointError(Exception):
    """A checkpoint that cannot be read (it is then ignored, and logged)."""


class Checkpoint:
    __slots__ = ("fsync", "path")

    def __init__(self, directory: Path, fsync: bool) -> None:
        self.path = directory / FILE_NAME
        self.fsync = fsync

    def load(self) -> dict[str, Any] | None:
        """The saved state, None if there is none. Raises CheckpointError when it is unreadable."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CheckpointError(f"cannot read {self.path}: {e}") from e
        try:
            state = json.loads(data)
        except ValueError as e:
            raise CheckpointError(f"{self.path} is not valid JSON: {e}") from e
        if not isinstance(state, dict) or state.get("version") != VERSION or not isinstance(state.get("objectives"),
                                                                                           dict):
            raise CheckpointError(f"{self.path}: not a version {VERSION} slo checkpoint")
        return state

    def save(self, state: dict[str, Any]) -> int:
        """Write ``state`` atomically; returns its size in bytes. Raises OSError."""
        data = json.dumps({"version": VERSION, **state}, separators=(",", ":")).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self.fsync:
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(data)
