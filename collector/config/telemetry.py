"""``service.telemetry``: the collector's own logs and metrics, in the OTel Collector's layout.

```yaml
service:
  telemetry:
    logs: {level: info, encoding: console}
    metrics:
      level: normal
      readers:                      # where /metrics is served (default localhost:8888)
        - pull: {exporter: {prometheus: {host: 0.0.0.0, port: 8888}}}
    resource:                       # labels of the target_info series
      service.namespace: tracing
```

What tracetriage cannot honour is accepted where upstream configs commonly carry it and reported once at
start-up (:meth:`TelemetryConfig.not_honoured`): OTLP export of the collector's own logs
(``logs.processors``), metrics (a ``periodic`` reader) and traces (``traces``). Other upstream options are
refused as not implemented.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from collector.config.net import endpoint_issues
from collector.config.schema import Duration, field
from collector.config.tls import TLSServerConfig

DEFAULT_METRICS_ENDPOINT = "localhost:8888"
DEFAULT_UI_ENDPOINT = "localhost:55679"  # the zPages port
_NEW_RESOURCE_KEYS = frozenset({"attributes", "attributes_list", "schema_url", "detection/development"})


@dataclass(frozen=True)
class LogsConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {
        "development": "", "disable_caller": "", "disable_stacktrace": "", "sampling": "every record is logged",
        "output_paths": "logs go to stderr", "error_output_paths": "logs go to stderr", "initial_fields": "",
        "disable_zap_resource": "",
    }

    level: Literal["debug", "info", "warn", "error"] = "info"
    encoding: Literal["console", "json"] = "console"
    processors: tuple[dict[str, Any], ...] = ()  # OTLP export of our own logs: not honoured, reported


@dataclass(frozen=True)
class PrometheusConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {
        "without_units": "", "without_type_suffix": "", "without_scope_info": "",
        "with_resource_constant_labels": "", "translation_strategy": "",
    }

    host: str = "localhost"
    port: int = field(8888, ge=0, le=65535)

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PullExporterConfig:
    prometheus: PrometheusConfig | None = field(None, present_enables=True)


@dataclass(frozen=True)
class PullReaderConfig:
    exporter: PullExporterConfig = field(default_factory=PullExporterConfig)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.exporter.prometheus is None:
            yield ("exporter", "must name an exporter: prometheus (the only pull exporter)")


@dataclass(frozen=True)
class MetricReaderConfig:
    pull: PullReaderConfig | None = None
    periodic: dict[str, Any] | None = None  # pushing our own metrics over OTLP: not honoured, reported

    def validate(self) -> Iterator[tuple[str, str]]:
        if (self.pull is None) == (self.periodic is None):
            yield ("", "give exactly one of pull, periodic")


@dataclass(frozen=True)
class MetricsConfig:
    NOT_IMPLEMENTED: ClassVar[Mapping[str, str]] = {"views": ""}

    level: Literal["none", "basic", "normal", "detailed"] = "normal"
    readers: tuple[MetricReaderConfig, ...] = ()
    address: str | None = None  # the older layout: host:port of /metrics, "" for none
    # HTTPS on every /metrics endpoint (mutual TLS with client_ca_file, reload_interval): not upstream, whose
    # Prometheus pull reader is plain HTTP; for scrapes that cross an untrusted network.
    tls: TLSServerConfig | None = None

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Where /metrics is served: one address per pull reader, or ``address``; none at level ``none``."""
        if self.level == "none":
            return ()
        if self.address is not None:
            return (self.address,) if self.address else ()
        if not self.readers:
            return (DEFAULT_METRICS_ENDPOINT,)
        return tuple(r.pull.exporter.prometheus.endpoint for r in self.readers
                     if r.pull is not None and r.pull.exporter.prometheus is not None)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.address and self.readers:
            yield ("address", "give readers or address, not both")
        elif self.address:
            yield from endpoint_issues(self.address, "address", "localhost:8888")
        for i, reader in enumerate(self.readers):
            prom = reader.pull.exporter.prometheus if reader.pull is not None else None
            if prom is not None:
                yield from endpoint_issues(prom.endpoint, f"readers[{i}].pull.exporter.prometheus.host",
                                           "localhost:8888")


@dataclass(frozen=True)
class UIAuthConfig:
    """``service.telemetry.ui.auth``: the authenticator extension every request to the page must pass."""

    authenticator: str = field(min_len=1)


@dataclass(frozen=True)
class UIConfig:
    """``service.telemetry.ui``: the live status page and its JSON API (collector/ui/), read-only."""

    endpoint: str = DEFAULT_UI_ENDPOINT
    refresh: Duration = field(Duration(5.0), ge=0)  # how often the page reloads itself (0: never)
    auth: UIAuthConfig | None = None  # e.g. {authenticator: bearertokenauth}: 401 without its credentials
    tls: TLSServerConfig | None = None  # HTTPS (mutual TLS with client_ca_file, reload_interval)

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from endpoint_issues(self.endpoint, "endpoint", DEFAULT_UI_ENDPOINT)


@dataclass(frozen=True)
class TelemetryConfig:
    logs: LogsConfig = field(default_factory=LogsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    traces: dict[str, Any] | None = None  # tracing the collector itself: not honoured, reported
    resource: dict[str, Any] = field(default_factory=dict)
    # Serves the debug endpoints (e.g. the trace lookup) beside /metrics; they show trace ids and span
    # names, so they are off unless asked for.
    debug: bool = False
    # The status page (off unless the section is present; ``ui:`` alone serves it on localhost:55679).
    ui: UIConfig | None = field(None, present_enables=True)

    @property
    def resource_attributes(self) -> dict[str, str | None]:
        """The configured resource attributes (a None value removes a default one)."""
        attributes, _ = _resource(self.resource)
        return attributes

    def validate(self) -> Iterator[tuple[str, str]]:
        _, issues = _resource(self.resource)
        yield from issues

    def not_honoured(self) -> Iterator[tuple[str, str]]:
        """(key path, message) for each accepted setting that tracetriage does not act on."""
        if self.logs.processors:
            yield ("logs.processors", "exporting the collector's own logs is not implemented; they go to stderr")
        for i, reader in enumerate(self.metrics.readers):
            if reader.periodic is not None:
                yield (f"metrics.readers[{i}].periodic", "pushing the collector's own metrics is not implemented; "
                                                         "scrape /metrics (a pull reader) instead")
        if self.traces:
            yield ("traces", "the collector does not trace itself; this section has no effect")


def _resource(raw: Mapping[str, Any]) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
    """Resource attributes from either layout: ``{attributes: [{name, value}], schema_url}`` or the older
    inline ``{name: value}`` (a null value removes the attribute)."""
    out: dict[str, str | None] = {}
    issues: list[tuple[str, str]] = []
    if not raw:
        return out, issues
    new_layout = isinstance(raw.get("attributes"), list) or any(
        k in raw for k in ("attributes_list", "detection/development", "schema_url"))
    if not new_layout:
        for key, value in raw.items():
            if value is not None and not isinstance(value, str | int | float | bool):
                issues.append((f"resource.{key}", "must be a string or null"))
            else:
                out[str(key)] = None if value is None else _text(value)
        return out, issues
    issues.extend((f"resource.{key}", "cannot be used together with resource.attributes")
                  for key in raw if key not in _NEW_RESOURCE_KEYS)
    if "attributes_list" in raw:
        issues.append(("resource.attributes_list", "not supported (as in the OTel Collector): use "
                                                   "resource.attributes"))
    if "detection/development" in raw:
        issues.append(("resource.detection/development", "an OTel Collector option that tracetriage does not "
                                                         "implement; list the attributes instead"))
    if "schema_url" in raw and not isinstance(raw["schema_url"], str):
        issues.append(("resource.schema_url", "must be a string"))
    attrs = raw.get("attributes") or []
    if not isinstance(attrs, list):
        issues.append(("resource.attributes", "must be a list of {name, value}"))
        return out, issues
    for i, item in enumerate(attrs):
        path = f"resource.attributes[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or "value" not in item:
            issues.append((path, "must be a mapping with name and value"))
            continue
        unknown = sorted(str(k) for k in item if k not in ("name", "value", "type"))
        if unknown:
            issues.append((f"{path}.{unknown[0]}", "unknown key (valid keys: name, type, value)"))
        value = item["value"]
        out[item["name"]] = None if value is None else _text(value)
    return out, issues


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


__all__ = ["LogsConfig", "MetricReaderConfig", "MetricsConfig", "PrometheusConfig", "TelemetryConfig", "UIConfig"]
