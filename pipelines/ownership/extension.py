"""The ``ownership`` extension: one ownership catalog per process, shared by every stage that names a team.

```yaml
extensions:
  ownership:                                   # or ownership/<name>; several may coexist
    catalog: [/etc/tracetriage/catalog/*.yaml]
    resource_attribute: service.owner
    default_team: sre
    reload_interval: 10s
processors:
  root_cause:
    ownership: ownership                       # a reference: the extension's id
  alert_routing:
    ownership: ownership
service:
  extensions: [ownership]                      # a referenced extension must be listed, as in otelcol
```

Stages reference it as exporters reference a ``file_storage`` extension with ``sending_queue.storage``: the
config layer checks the id before anything starts, and the stage looks the extension up in
``host.extensions`` at start (extensions start first and stop last). The catalog is then read, reloaded
and its problems counted once, whatever the number of stages. A stage's ``ownership`` may instead be an
inline block with the same keys: shorthand for a private extension that only that stage uses, started and
stopped with it.
"""

from __future__ import annotations

from aiohttp import web

from collector.component import ComponentID, ExtensionRef, Host, Settings
from collector.errors import ComponentStartError
from pipelines.ownership.catalog import CatalogError
from pipelines.ownership.config import OwnershipConfig
from pipelines.ownership.cost import TeamCost
from pipelines.ownership.dependencies import EdgeSource, Observed
from pipelines.ownership.resolver import Ownership

TYPE = "ownership"
COST_KEY = "ownership:team_cost"  # Host.shared: the extension that counts team cost
DEPENDENCIES_PATH = "/catalog/dependencies"
OwnershipSetting = str | OwnershipConfig  # a stage's ``ownership``: an extension id, or an inline block


class OwnershipExtension:
    """Holds the process's :class:`Ownership` for one config: loads the catalog at start (a start error
    when catalog patterns are given and no file loads), reloads it every ``reload_interval``."""

    def __init__(self, settings: Settings, config: OwnershipConfig) -> None:
        self.id = settings.id
        self.ownership = Ownership(config, settings.telemetry, settings.logger)
        self.cost = TeamCost(self.ownership, settings.telemetry)
        self._host: Host | None = None

    async def start(self, host: Host) -> None:
        try:
            await self.ownership.start(host)
        except CatalogError as e:
            raise ComponentStartError(f"extension {self.id}", e) from e
        # The first ownership extension counts each team's cost at every trace buffer (once per process).
        # It also serves the observed dependencies in the catalog's terms.
        if host.shared.setdefault(COST_KEY, self) is self:
            self._host = host
            host.add_outcome_listener(self.cost)
            host.add_route(DEPENDENCIES_PATH, self._dependencies)

    def observed(self) -> Observed:
        """The dependencies the ``servicegraph`` processors observed, and the services seen in traces."""
        host = self._host
        sources = [p for p in host.processors.values() if isinstance(p, EdgeSource)] if host is not None else []
        return Observed(sources, self.cost.services)

    async def _dependencies(self, request: web.Request, _: str) -> web.Response:
        observed = self.observed()
        if request.query.get("format") == "json":
            catalog = {name.lower(): name for name in self.ownership.components()}
            return web.Response(text=observed.to_json(catalog), content_type="application/json")
        return web.Response(text=observed.to_yaml(self.ownership), content_type="application/yaml")

    async def shutdown(self) -> None:
        if self._host is not None:
            self._host.remove_outcome_listener(self.cost)
            if self._host.shared.get(COST_KEY) is self:
                del self._host.shared[COST_KEY]
            self._host = None
        await self.ownership.shutdown()


def ownership_refs(key: str, setting: OwnershipSetting | None) -> list[ExtensionRef]:
    """The extension reference of a stage's ``ownership`` setting (none for an inline block)."""
    return [ExtensionRef(key, setting, TYPE)] if isinstance(setting, str) else []


class OwnershipSource:
    """Where a stage's ownership comes from: a referenced ``ownership`` extension, found at :meth:`start`,
    or an inline block, a private :class:`Ownership` that the stage starts and stops itself."""

    __slots__ = ("_key", "_owner", "_private", "_ref", "_resolved")

    def __init__(self, setting: OwnershipSetting, settings: Settings, key: str = "ownership") -> None:
        self._owner = f"{settings.kind.value} {settings.id}"
        self._key = key
        self._ref = setting if isinstance(setting, str) else None
        self._private = (Ownership(setting, settings.telemetry, settings.logger)
                         if isinstance(setting, OwnershipConfig) else None)
        self._resolved: Ownership | None = self._private

    @property
    def shared(self) -> bool:
        """Whether it is a referenced extension (else an inline block)."""
        return self._ref is not None

    def get(self) -> Ownership:
        """The ownership in use (for a reference: from :meth:`start` on)."""
        if self._resolved is None:
            raise RuntimeError(f"{self._owner}: {self._key}: extension {self._ref!r} is found when the stage starts")
        return self._resolved

    async def start(self, host: Host) -> Ownership:
        """Start the private ownership, or find the referenced extension in ``host.extensions``."""
        if self._private is not None:
            try:
                await self._private.start(host)
            except CatalogError as e:
                raise ComponentStartError(self._owner, e) from e
            return self._private
        ref = self._ref or ""
        try:
            extension = host.extensions.get(ComponentID.parse(ref))
        except ValueError as e:
            raise ComponentStartError(self._owner, f"{self._key}: {e}") from e
        if not isinstance(extension, OwnershipExtension):
            problem = "is not an ownership extension" if extension is not None else (
                "is not a running extension (define it under extensions and list it in service.extensions)")
            raise ComponentStartError(self._owner, f"{self._key}: {ref!r} {problem}")
        self._resolved = extension.ownership
        return extension.ownership

    async def shutdown(self) -> None:
        """Stop the private ownership (a shared extension is stopped by the service, after the stages)."""
        if self._private is not None:
            await self._private.shutdown()
