"""The config of the ``ownership`` extension, also written inline as a stage's ``ownership`` block."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from collector.config import Duration, field
from pipelines.ownership.catalog import normalise_team


@dataclass(frozen=True)
class OwnershipConfig:
    """Who owns a service.

    * ``catalog``: Backstage catalog files, as paths or globs (``configs/catalog/*.yaml``, ``**`` allowed),
      relative to the working directory.
    * ``resource_attribute``: a resource attribute naming the owner in telemetry (e.g. ``service.owner``);
      it wins over the catalog when present. Empty: off.
    * ``default_team``: the team of a service nobody claims.
    * ``reload_interval``: how often catalog files are checked for changes (mtime, size, inode) and
      globs re-expanded. 0: never (the files are read once at start).
    """

    catalog: tuple[str, ...] = ()
    resource_attribute: str = ""
    default_team: str = field("sre", min_len=1)
    reload_interval: Duration = field(Duration(10.0), ge=0)

    def validate(self) -> Iterator[tuple[str, str]]:
        for i, pattern in enumerate(self.catalog):
            if not pattern.strip():
                yield f"catalog[{i}]", "must be a path or glob, got an empty string"
        if self.default_team and not normalise_team(self.default_team):
            yield "default_team", f"must name a team (e.g. sre or group:sre), got {self.default_team!r}"
