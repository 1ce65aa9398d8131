"""``Ownership``: service -> team (and PagerDuty key), from the catalog, telemetry and a default.

The catalog is kept per file. A reload checks each file's (mtime, size, inode) and re-expands the globs;
only changed files are parsed again. A file that fails to parse (or cannot be read) keeps its last good
content and is reported; a file that disappears (or no longer matches a glob) takes its entries with it.
Every change builds a new immutable snapshot that readers pick up with one attribute read, so lookups
never lock and never see a half-built catalog. Reloads run in a worker thread (file I/O stays off the
event loop).

Where several files define the same Component or Group, the first one wins in the order the patterns
are given (files of one glob sorted by path); the others are reported.

Startup: :meth:`Ownership.load` raises :class:`CatalogError` when catalog patterns are configured and not
a single file can be loaded (a typo in a path would otherwise quietly page ``default_team`` for
everything). Broken files at later reloads never stop anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from collector.component import Host
from collector.telemetry import Telemetry
from pipelines.ownership.catalog import (
    CatalogError,
    CatalogFile,
    CatalogSyntaxError,
    Component,
    Group,
    normalise_team,
    read_catalog,
)
from pipelines.ownership.config import OwnershipConfig


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    pagerduty_key: str | None


class _FileState:
    __slots__ = ("content", "error", "stat_key")

    def __init__(self) -> None:
        self.stat_key: tuple[int, int, int] | None = None
        self.content: CatalogFile | None = None  # last good content
        self.error: str | None = None  # the error last reported for this file (reported once per change)


class _Snapshot:
    __slots__ = ("components", "groups")

    def __init__(self, components: Mapping[str, Component], groups: Mapping[str, Group]) -> None:
        self.components = components  # by lowercased metadata.name
        self.groups = groups  # by normalised name


class Ownership:
    """See the module docstring. Lookups are cheap and safe from any thread or task."""

    def __init__(self, config: OwnershipConfig, telemetry: Telemetry, logger: logging.Logger) -> None:
        self.config = config
        self._log = logger
        self._default = normalise_team(config.default_team) or "sre"
        self._files: dict[str, _FileState] = {}
        self._snapshot = _Snapshot({}, {})
        self.generation = 0  # counts the catalog's changes (a cache of lookups compares it)
        self._loaded = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._errors = telemetry.counter(
            "tracetriage_ownership_catalog_errors_total",
            "Catalog problems found (unreadable or invalid file, invalid document), by file.", ("file",),
        )
        self._components_gauge = telemetry.gauge(
            "tracetriage_ownership_catalog_components", "Components in the loaded ownership catalog.",
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Initial, synchronous load. Broken files are reported and skipped; raises :class:`CatalogError`
        when patterns are configured and no file at all could be loaded."""
        self.refresh()
        self._loaded = True
        if self.config.catalog and not any(s.content is not None for s in self._files.values()):
            reasons = "; ".join(s.error for s in self._files.values() if s.error) or "no file matches"
            raise CatalogError(f"no catalog file could be loaded from {list(self.config.catalog)}: {reasons}")

    async def start(self, host: Host) -> None:
        """Loads (if :meth:`load` was not called) and starts the reload task."""
        if not self._loaded:
            self.load()
        if self._task is None and not self._closed and self.config.catalog and self.config.reload_interval > 0:
            self._task = asyncio.create_task(self._reload_loop(), name="ownership-catalog-reload")
            host.watch(self._task, self._log, "ownership catalog reload")

    async def shutdown(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reload_loop(self) -> None:
        interval = float(self.config.reload_interval)
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.refresh)

    # -- lookups -----------------------------------------------------------------------------------

    def owner_of(self, service: str, resource_attributes: Mapping[str, str] | None = None) -> Team:
        """The owning team: the ``resource_attribute`` (if configured and present), else the catalog
        Component's ``spec.owner``, else ``default_team``. Its ``pagerduty_key`` is
        :meth:`pagerduty_key_for` ``(service, team)``."""
        snap = self._snapshot
        attr = self.config.resource_attribute
        team = ""
        if attr and resource_attributes:
            value = resource_attributes.get(attr)
            if isinstance(value, str):
                team = normalise_team(value)
        component = snap.components.get(service.lower())
        if not team:
            team = component.owner if component is not None else self._default
        return Team(team, _key_for(snap, component, team))

    def team(self, name: str) -> Team:
        """A team with its Group's PagerDuty key (None if the Group is unknown or has none)."""
        team = normalise_team(name)
        group = self._snapshot.groups.get(team)
        return Team(team, group.pagerduty_key if group is not None else None)

    def pagerduty_key_for(self, service: str, team_name: str) -> str | None:
        """The routing key for an alert about ``service`` sent to ``team_name``: the service's Component
        annotation if that team owns the Component in the catalog, else the team's Group annotation."""
        snap = self._snapshot
        return _key_for(snap, snap.components.get(service.lower()), normalise_team(team_name))

    def components(self) -> Mapping[str, str]:
        """Every catalog Component (``metadata.name`` as written) -> owning team."""
        return MappingProxyType({c.name: c.owner for c in self._snapshot.components.values()})

    def teams(self) -> Mapping[str, Team]:
        """Every catalog Group as a Team with its own key."""
        return MappingProxyType({g.name: Team(g.name, g.pagerduty_key) for g in self._snapshot.groups.values()})

    # -- reloading ---------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Check the files now (blocking I/O); returns whether the catalog changed."""
        paths = self._expand()
        changed = False
        for gone in [p for p in self._files if p not in paths]:
            state = self._files.pop(gone)
            if state.content is not None:
                self._log.info("catalog file %s no longer present: its entries are removed", gone)
                changed = True
        for path, literal in paths.items():
            state = self._files.setdefault(path, _FileState())
            changed |= self._check(path, literal, state)
        if changed or not self._loaded:
            self._snapshot = self._build()
            self.generation += 1
            self._components_gauge.set(len(self._snapshot.components))
        return changed

    def _expand(self) -> dict[str, bool]:
        """Files to watch, in precedence order -> whether named literally (then a missing file is an error)."""
        out: dict[str, bool] = {}
        for pattern in self.config.catalog:
            if glob.has_magic(pattern):
                for p in sorted(glob.glob(pattern, recursive=True)):
                    if os.path.isfile(p):
                        out.setdefault(p, False)
            else:
                out.setdefault(pattern, True)
        return out

    def _check(self, path: str, literal: bool, state: _FileState) -> bool:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            had = state.content is not None
            state.content, state.stat_key = None, None
            if literal:
                self._problem(state, path, f"catalog file {path} not found")
            return had
        except OSError as e:
            self._problem(state, path, f"catalog file {path}: cannot stat: {e}; keeping its last good content")
            return False
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == state.stat_key:
            return False
        state.stat_key = key
        state.error = None  # changed on disk: report afresh
        try:
            content = read_catalog(path)
        except (OSError, CatalogSyntaxError) as e:
            kept = "keeping its last good content" if state.content is not None else "nothing loaded from it"
            self._problem(state, path, f"catalog file {path} not loaded: {e}; {kept}")
            return False
        state.content, state.error = content, None
        for problem in content.problems:
            self._log.warning("catalog %s; document skipped", problem)
            self._errors.labels(path).inc()
        self._log.info("catalog file %s loaded: %d components, %d groups", path, len(content.components),
                       len(content.groups))
        return True

    def _problem(self, state: _FileState, path: str, message: str) -> None:
        if state.error == message:
            return  # already reported; a file stays broken until it changes
        state.error = message
        self._log.error("%s", message)
        self._errors.labels(path).inc()

    def _build(self) -> _Snapshot:
        components: dict[str, Component] = {}
        groups: dict[str, Group] = {}
        for state in self._files.values():
            content = state.content
            if content is None:
                continue
            for c in content.components:
                first = components.setdefault(c.name.lower(), c)
                if first is not c:
                    self._log.warning("catalog %s document %d: Component %r already defined in %s document %d; "
                                      "ignored", c.file, c.document, c.name, first.file, first.document)
            for g in content.groups:
                first_g = groups.setdefault(g.name, g)
                if first_g is not g:
                    self._log.warning("catalog %s document %d: Group %r already defined in %s document %d; "
                                      "ignored", g.file, g.document, g.name, first_g.file, first_g.document)
        return _Snapshot(MappingProxyType(components), MappingProxyType(groups))


def _key_for(snap: _Snapshot, component: Component | None, team: str) -> str | None:
    if component is not None and component.pagerduty_key and component.owner == team:
        return component.pagerduty_key
    group = snap.groups.get(team)
    return group.pagerduty_key if group is not None else None
