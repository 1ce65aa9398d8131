"""Finds component factories: the built-in ones by module path, third-party ones by entry point.

This is the only module of ``collector`` that reaches into ``pipelines`` (by name, at run time).
Plugins publish a :class:`~collector.component.Factory` (or a zero-argument callable returning one)
under the entry-point group ``tracetriage.components``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from collector.component import Factory, Kind

ENTRY_POINT_GROUP = "tracetriage.components"

BUILTIN_MODULES: tuple[str, ...] = (
    "collector.receivers.otlp",
    "collector.receivers.kafka",
    "collector.exporters.debug",
    "collector.exporters.file",
    "collector.exporters.otlp",
    "collector.exporters.otlphttp",
    "collector.exporters.kafka",
    "collector.extensions.health_check",
    "collector.extensions.file_storage",
    "collector.extensions.bearertokenauth",
    "collector.extensions.basicauth",
    "pipelines.batch",
    "pipelines.memory_limiter",
    "pipelines.tail_sampling",
    "pipelines.root_cause",
    "pipelines.alert_routing",
    "pipelines.ownership",
    "pipelines.slo",
    "pipelines.trace_tests",
    "pipelines.servicegraph",
    "pipelines.spanmetrics",
)

log = logging.getLogger("tracetriage.registry")


@dataclass(frozen=True)
class Entry:
    factory: Factory
    source: str  # "builtin" or the distribution that provides the plugin


class Registry:
    """Factories by (kind, type)."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._entries: dict[tuple[Kind, str], Entry] = {}
        self.load_errors: list[str] = []
        for e in entries:
            self.add(e.factory, e.source)

    def add(self, factory: Factory, source: str = "builtin") -> None:
        names = (factory.type, *getattr(factory, "aliases", ()))
        for name in names:
            prev = self._entries.get((factory.kind, name))
            if prev is not None:
                raise ValueError(
                    f"{factory.kind} type {name!r} from {source} clashes with the one from {prev.source}"
                )
        entry = Entry(factory, source)
        for name in names:
            self._entries[(factory.kind, name)] = entry

    def get(self, kind: Kind, type_: str) -> Factory | None:
        entry = self._entries.get((kind, type_))
        return entry.factory if entry else None

    def types(self, kind: Kind) -> list[str]:
        """Every type name config may use for ``kind``, aliases included."""
        return sorted(t for k, t in self._entries if k is kind)

    def entries(self) -> list[Entry]:
        """One entry per factory (an alias is not an entry of its own)."""
        unique = {id(e): e for e in self._entries.values()}.values()
        return sorted(unique, key=lambda e: (list(Kind).index(e.factory.kind), e.factory.type))

    @classmethod
    def default(cls, *, plugins: bool = True) -> Registry:
        reg = cls()
        for module_name in BUILTIN_MODULES:
            module = importlib.import_module(module_name)
            reg.add(module.factory, "builtin")
        if plugins:
            reg.load_plugins()
        return reg

    def load_plugins(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            source = f"plugin {dist} ({ep.value})"
            try:
                obj = ep.load()
                factory = obj if isinstance(obj, Factory) else obj()
                if not isinstance(factory, Factory):
                    raise TypeError(f"entry point gave {type(factory).__name__}, not a Factory")
                if factory.type != ep.name:
                    raise ValueError(f"entry point name {ep.name!r} differs from factory type {factory.type!r}")
                self.add(factory, source)
            except Exception as e:  # noqa: BLE001 - a broken plugin must not stop the others; it is reported
                msg = f"cannot load component plugin {ep.name!r} from {source}: {e}"
                self.load_errors.append(msg)
                log.warning(msg)


def slo_rules(configs: Sequence[object], name: str, namespace: str = "") -> str:
    """``tracetriage slo rules``: a PrometheusRule manifest for the objectives of these ``slo`` processor
    configs (from :mod:`pipelines.slo.rules`, imported when called). Raises ValueError (invalid objectives)."""
    rules = importlib.import_module("pipelines.slo.rules")
    text: str = rules.render(configs, name, namespace)
    return text


def catalog_diff(addresses: Sequence[str], patterns: Sequence[str], stale_after: float,
                 url: str = "") -> tuple[str, int]:
    """``tracetriage catalog diff``: the drift report and its exit code (from :mod:`pipelines.ownership.diff`,
    imported when called). Raises ValueError (exit code 2) saying why the diff cannot be made."""
    diff = importlib.import_module("pipelines.ownership.diff")
    try:
        result: tuple[str, int] = diff.catalog_diff(addresses, patterns, stale_after, url)
    except diff.DiffError as e:
        raise ValueError(str(e)) from e
    return result
