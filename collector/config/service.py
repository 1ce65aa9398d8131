"""The whole collector config: components by id, pipelines and service telemetry, validated at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.component import ComponentID, Factory, Kind, ReferencesExtensions
from collector.config.features import ALLOW_NO_PIPELINES, FeatureGates
from collector.config.loader import Provenance, load
from collector.config.schema import ConfigError, ConfigIssue, Decoder, Duration, field, join
from collector.config.telemetry import LogsConfig, MetricsConfig, TelemetryConfig
from collector.registry import Registry

TOP_LEVEL = ("receivers", "processors", "exporters", "extensions", "connectors", "service")


@dataclass(frozen=True)
class PipelineSection:
    receivers: tuple[str, ...] = field(min_len=1)
    exporters: tuple[str, ...] = field(min_len=1)
    processors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSection:
    pipelines: dict[str, PipelineSection | None] = field(default_factory=dict)
    extensions: tuple[str, ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    shutdown_timeout: Duration = field(Duration(30.0), gt=0)


@dataclass(frozen=True)
class ComponentConfig:
    id: ComponentID
    factory: Factory
    config: Any


@dataclass(frozen=True)
class PipelineConfig:
    id: ComponentID
    receivers: tuple[ComponentID, ...]
    processors: tuple[ComponentID, ...]
    exporters: tuple[ComponentID, ...]


@dataclass(frozen=True)
class CollectorConfig:
    receivers: dict[ComponentID, ComponentConfig]
    processors: dict[ComponentID, ComponentConfig]
    exporters: dict[ComponentID, ComponentConfig]
    extensions: dict[ComponentID, ComponentConfig]
    pipelines: dict[ComponentID, PipelineConfig]
    service: ServiceSection
    files: tuple[str, ...] = ()
    warnings: tuple[ConfigIssue, ...] = ()

    def section(self, kind: Kind) -> dict[ComponentID, ComponentConfig]:
        return {
            Kind.RECEIVER: self.receivers,
            Kind.PROCESSOR: self.processors,
            Kind.EXPORTER: self.exporters,
            Kind.EXTENSION: self.extensions,
        }[kind]


def _defined(raw: Mapping[str, Any], kind: Kind, cid: ComponentID) -> bool:
    section = raw.get(kind.section)
    return isinstance(section, Mapping) and any(
        isinstance(k, str) and k.strip() == str(cid) for k in section
    )


def _kinds_with(registry: Registry, type_: str) -> list[str]:
    return [k.value for k in Kind if registry.get(k, type_) is not None]


def build_config(raw: Mapping[str, Any], registry: Registry, prov: Provenance | None = None,
                 files: Sequence[str] = (), *, gates: FeatureGates | None = None,
                 issues: Sequence[ConfigIssue] = (), warnings: Sequence[ConfigIssue] = ()) -> CollectorConfig:
    """Validate a merged raw config. Raises ConfigError listing every issue, each with file and key path;
    ``issues`` found while loading (substitution errors) are reported with them."""
    gates = gates or FeatureGates()
    dec = Decoder()
    for key in raw:
        if key == "connectors":
            dec.error("connectors", "connectors are not supported by tracetriage; use one pipeline per path")
        elif key not in TOP_LEVEL:
            dec.error(str(key), f"unknown top-level key (valid keys: {', '.join(TOP_LEVEL)})")

    sections: dict[Kind, dict[ComponentID, ComponentConfig]] = {k: {} for k in Kind}
    for kind in Kind:
        section = raw.get(kind.section)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            dec.error(kind.section, "must be a mapping of component id to its settings")
            continue
        for key, value in section.items():
            path = join(kind.section, str(key))
            try:
                cid = ComponentID.parse(key)
            except ValueError as e:
                dec.error(path, str(e))
                continue
            factory = registry.get(kind, cid.type)
            if factory is None:
                other = _kinds_with(registry, cid.type)
                hint = f" ({cid.type!r} is a {' and '.join(other)}, not a {kind.value})" if other else ""
                available = ", ".join(registry.types(kind)) or "none"
                dec.error(path, f"unknown {kind.value} type {cid.type!r}{hint}; available: {available}")
                continue
            cfg = dec.decode_dataclass(factory.config_class, value, path)
            gated = getattr(factory.config_class, "feature_gates", None)
            if gated and dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
                on = {option: True for gate_id, option in gated.items() if gates.enabled(gate_id)}
                if on:
                    cfg = dataclasses.replace(cfg, **on)
            sections[kind][cid] = ComponentConfig(cid, factory, cfg)

    service_raw = raw.get("service")
    if service_raw is None:
        dec.error("service", "is required (service.pipelines says which components run)")
        service_raw = {}
    service = dec.decode_dataclass(ServiceSection, service_raw, "service")
    if not service.pipelines and not gates.enabled(ALLOW_NO_PIPELINES) and isinstance(service_raw, Mapping):
        what = "must not be empty" if isinstance(service_raw.get("pipelines"), Mapping) else "is required"
        dec.error("service.pipelines", f"{what} (a traces pipeline with receivers and exporters; the "
                                       f"{ALLOW_NO_PIPELINES} feature gate allows none)")

    pipelines: dict[ComponentID, PipelineConfig] = {}
    for name, section in (service.pipelines or {}).items():
        path = join("service.pipelines", name)
        try:
            pid = ComponentID.parse(name)
        except ValueError as e:
            dec.error(path, str(e))
            continue
        if pid.type in ("metrics", "logs", "profiles"):
            dec.error(path, f"tracetriage processes traces only; a {pid.type} pipeline is not supported")
            continue
        if pid.type != "traces":
            dec.error(path, "pipeline id must be 'traces' or 'traces/<name>'")
            continue
        if section is None:
            dec.error(path, "is empty: a pipeline needs receivers and exporters")
            continue
        refs: dict[Kind, tuple[ComponentID, ...]] = {}
        for kind, ids in ((Kind.RECEIVER, section.receivers), (Kind.PROCESSOR, section.processors),
                          (Kind.EXPORTER, section.exporters)):
            resolved: list[ComponentID] = []
            for i, text in enumerate(ids or ()):
                ref_path = join(join(path, kind.section), i)
                try:
                    cid = ComponentID.parse(text)
                except ValueError as e:
                    dec.error(ref_path, str(e))
                    continue
                if cid in resolved:
                    dec.error(ref_path, f"{kind.value} {str(cid)!r} is listed twice in this pipeline")
                    continue
                if cid not in sections[kind]:
                    if not _defined(raw, kind, cid):  # defined but invalid: already reported there
                        dec.error(ref_path, f"references {kind.value} {str(cid)!r}, which is not defined in "
                                            f"{kind.section}")
                    continue
                resolved.append(cid)
            refs[kind] = tuple(resolved)
        pipelines[pid] = PipelineConfig(pid, refs[Kind.RECEIVER], refs[Kind.PROCESSOR], refs[Kind.EXPORTER])

    for i, text in enumerate(service.extensions or ()):
        ref_path = join("service.extensions", i)
        try:
            cid = ComponentID.parse(text)
        except ValueError as e:
            dec.error(ref_path, str(e))
            continue
        if cid not in sections[Kind.EXTENSION] and not _defined(raw, Kind.EXTENSION, cid):
            dec.error(ref_path, f"references extension {str(cid)!r}, which is not defined in extensions")

    listed = set()
    for text in service.extensions:
        try:
            listed.add(ComponentID.parse(text))
        except ValueError:
            continue  # reported above

    def check_ref(path: str, ref: str, sid: ComponentID, wrong_type: str, type_: str) -> None:
        if sid not in sections[Kind.EXTENSION]:
            dec.error(path, f"references extension {ref!r}, which is not defined in extensions")
        elif sid not in listed:
            dec.error(path, f"extension {ref!r} must be listed in service.extensions to be used")
        elif type_ and sid.type != type_:  # an empty type: any extension (its role is checked at start)
            dec.error(path, wrong_type)

    for eid, cc in sections[Kind.EXPORTER].items():
        storage = getattr(getattr(cc.config, "sending_queue", None), "storage", None)
        if not storage:
            continue
        path = join(join(Kind.EXPORTER.section, str(eid)), "sending_queue.storage")
        try:
            sid = ComponentID.parse(storage)
        except ValueError:
            continue  # reported by the exporter's own validation
        check_ref(path, storage, sid, f"{storage!r} is not a storage extension (use a file_storage extension)",
                  "file_storage")

    for kind in (Kind.RECEIVER, Kind.PROCESSOR, Kind.EXPORTER, Kind.EXTENSION):
        for cid, cc in sections[kind].items():
            if not isinstance(cc.config, ReferencesExtensions):
                continue
            for ref in cc.config.extension_refs():
                path = join(join(kind.section, str(cid)), ref.key)
                try:
                    sid = ComponentID.parse(ref.id)
                except ValueError as e:
                    what = f"an {ref.type} extension ({ref.type} or {ref.type}/<name>)" if ref.type else "an extension"
                    dec.error(path, f"must be the id of {what}: {e}")
                    continue
                check_ref(path, ref.id, sid, f"{ref.id!r} is not an {ref.type} extension (use {ref.type} or "
                                             f"{ref.type}/<name>)", ref.type)

    notes = list(warnings)
    telemetry = service.telemetry if isinstance(service.telemetry, TelemetryConfig) else TelemetryConfig()
    notes += [ConfigIssue(join("service.telemetry", p), m) for p, m in telemetry.not_honoured()]
    # A component's config may note what is valid but likely wrong (``warnings()`` yields (path, message)).
    for kind in (Kind.RECEIVER, Kind.PROCESSOR, Kind.EXPORTER, Kind.EXTENSION):
        for cid, cc in sections[kind].items():
            config_warnings = getattr(cc.config, "warnings", None)
            if callable(config_warnings):
                notes += [ConfigIssue(join(join(kind.section, str(cid)), p), m) for p, m in config_warnings()]
    if prov is not None:
        notes = prov.attribute(notes)
    unresolved = {i.path for i in issues}  # a value left unsubstituted: its own error says enough
    found = [i for i in dec.issues if i.path not in unresolved]
    all_issues = list(issues) + (prov.attribute(found) if prov else found)
    if all_issues:
        raise ConfigError(all_issues, warnings=notes)
    return CollectorConfig(
        receivers=sections[Kind.RECEIVER],
        processors=sections[Kind.PROCESSOR],
        exporters=sections[Kind.EXPORTER],
        extensions={k: v for k, v in sections[Kind.EXTENSION].items() if k in listed},
        pipelines=pipelines,
        service=service,
        files=tuple(files),
        warnings=tuple(notes),
    )


def load_config(paths: Sequence[str], registry: Registry, env: Mapping[str, str] | None = None, *,
                gates: FeatureGates | None = None) -> CollectorConfig:
    """Read, merge and validate config sources (paths or ``file:``, ``env:``, ``yaml:`` URIs). Raises
    ConfigError listing every issue."""
    loaded = load(paths, env, gates)
    return build_config(loaded.raw, registry, loaded.provenance, loaded.sources, gates=gates,
                        issues=loaded.issues, warnings=loaded.warnings)


__all__ = ["CollectorConfig", "ComponentConfig", "ConfigError", "ConfigIssue", "LogsConfig", "MetricsConfig",
           "PipelineConfig", "TelemetryConfig", "load_config"]
