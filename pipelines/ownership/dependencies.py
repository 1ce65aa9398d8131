"""Dependencies as traces show them, in the catalog's terms: per Backstage Component, the ``spec.dependsOn``
that was observed (``component:<service>`` for calls between services, ``resource:<name>`` for databases and
other uninstrumented callees seen as virtual nodes), from the edges of the ``servicegraph`` processors.

``GET /catalog/dependencies`` on the telemetry server (added by the ``ownership`` extension) serves them as
Backstage entity YAML, one Component document per calling service; ``?format=json`` gives the same with the
time each dependency was last seen, the services seen in traces and since when the process has been
watching, for ``tracetriage catalog diff``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import yaml

from pipelines.ownership.resolver import Ownership

API_VERSION = "backstage.io/v1alpha1"
SOURCE_ANNOTATION = "tracetriage.io/dependencies-source"


@runtime_checkable
class EdgeSource(Protocol):
    """A processor that observes service-graph edges (``servicegraph``)."""

    watching_since: float  # unix time it started observing

    def observed_edges(self) -> dict[tuple[str, str, str], float]:
        """(client, server, connection_type) -> unix time last seen."""
        ...


def dependency_ref(server: str, connection_type: str, components: Mapping[str, str]) -> str:
    """The entity reference of a callee: a catalog Component, or a service seen calling and called, is a
    ``component:``; a database or another virtual node that no Component names is a ``resource:``."""
    name = server.lower()
    if connection_type == "database" or (connection_type == "virtual_node" and name not in components):
        return f"resource:{name}"
    return f"component:{name}"


class Observed:
    """Observed dependencies per calling service (lowercased), with last-seen times."""

    def __init__(self, sources: Iterable[EdgeSource], services: Iterable[str], now: float | None = None) -> None:
        self.now = time.time() if now is None else now
        self.watching_since = self.now
        self.edges: dict[tuple[str, str, str], float] = {}
        for source in sources:
            self.watching_since = min(self.watching_since, source.watching_since)
            for key, seen in source.observed_edges().items():
                self.edges[key] = max(self.edges.get(key, 0.0), seen)
        self.services: set[str] = {s for s in services if s}
        for client, server, connection_type in self.edges:
            if client != "user":
                self.services.add(client)
            if connection_type in ("", "messaging_system"):
                self.services.add(server)

    def depends_on(self, components: Mapping[str, str]) -> dict[str, dict[str, float]]:
        """Calling service -> {dependency reference: last seen}. ``components``: lowercased catalog names."""
        out: dict[str, dict[str, float]] = {}
        for (client, server, connection_type), seen in sorted(self.edges.items()):
            if client == "user":
                continue
            deps = out.setdefault(client.lower(), {})
            ref = dependency_ref(server, connection_type, components)
            deps[ref] = max(deps.get(ref, 0.0), seen)
        return out

    def to_json(self, components: Mapping[str, str]) -> str:
        return json.dumps({
            "now": self.now,
            "watching_since": self.watching_since,
            "components": self.depends_on(components),
            "services": sorted(self.services),
        }, indent=2, sort_keys=True)

    def to_yaml(self, ownership: Ownership) -> str:
        """One Backstage Component document per calling service, with its observed ``spec.dependsOn``."""
        catalog = {name.lower(): name for name in ownership.components()}
        docs: list[dict[str, Any]] = []
        for service, deps in self.depends_on(catalog).items():
            name = catalog.get(service, service)
            docs.append({
                "apiVersion": API_VERSION,
                "kind": "Component",
                "metadata": {"name": name, "annotations": {SOURCE_ANNOTATION: "traces"}},
                "spec": {"type": "service", "lifecycle": "production",
                         "owner": f"group:{ownership.owner_of(name).name}", "dependsOn": sorted(deps)},
            })
        return yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True) if docs else ""
