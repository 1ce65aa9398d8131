"""``file_storage`` extension: a directory where components keep state across restarts, as in contrib.

```yaml
extensions:
  file_storage:
    directory: /var/lib/tracetriage     # required
    create_directory: false              # create it (mode 0750) when missing
    fsync: false                         # fsync every write: survives power loss, not only a crash
    timeout: 1s                          # bound on one storage operation
```

Components ask for their own subdirectory with :meth:`FileStorageExtension.directory_for` (one per
component id: ``exporter_kafka``, ``exporter_kafka_name``). Exporters use it through
``sending_queue.storage`` (see :mod:`collector.exporters.persistent_queue`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from collector.component import ComponentID, Factory, Host, Kind, Settings
from collector.config.schema import Duration, field
from collector.errors import ComponentStartError

DEFAULT_TIMEOUT = Duration(1.0)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class FileStorageConfig:
    directory: str = field(min_len=1)
    timeout: Duration = field(DEFAULT_TIMEOUT, ge=0)
    fsync: bool = False
    create_directory: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.directory.strip():
            yield ("directory", "must not be empty")


class FileStorageExtension:
    """The storage directory; checked (and created if asked) at start."""

    def __init__(self, settings: Settings, config: FileStorageConfig) -> None:
        self.id = settings.id
        self.config = config
        self._logger = settings.logger
        self._started = False

    @property
    def directory(self) -> Path:
        return Path(self.config.directory)

    @property
    def fsync(self) -> bool:
        return self.config.fsync

    @property
    def timeout(self) -> float:
        return float(self.config.timeout)

    def directory_for(self, kind: Kind, component: ComponentID) -> Path:
        """The subdirectory of one component (created on demand)."""
        name = f"{kind.value}_{component.type}" + (f"_{component.name}" if component.name else "")
        path = self.directory / _UNSAFE.sub("_", name)
        path.mkdir(mode=0o750, exist_ok=True)
        return path

    async def start(self, host: Host) -> None:
        if self._started:
            return
        path = self.directory
        try:
            if not path.is_dir():
                if not self.config.create_directory:
                    raise ComponentStartError(
                        f"extension {self.id}",
                        f"directory {str(path)!r} does not exist (create it, or set create_directory: true)",
                    )
                path.mkdir(mode=0o750, parents=True, exist_ok=True)
            if not os.access(path, os.W_OK | os.X_OK):
                raise ComponentStartError(f"extension {self.id}", f"directory {str(path)!r} is not writable")
        except OSError as e:
            raise ComponentStartError(f"extension {self.id}", f"cannot use directory {str(path)!r}: {e}") from e
        self._started = True
        self._logger.info("file_storage %s using %s (fsync %s)", self.id, path, "on" if self.fsync else "off")

    async def shutdown(self) -> None:
        self._started = False


def create(settings: Settings, config: FileStorageConfig) -> FileStorageExtension:
    return FileStorageExtension(settings, config)


factory = Factory(
    "file_storage", Kind.EXTENSION, FileStorageConfig, create,
    description="A local directory where components (persistent sending queues) keep data across restarts.",
)

__all__ = ["FileStorageConfig", "FileStorageExtension", "factory"]
