"""What upstream configs carry: accepted where tracetriage implements it (the refusals users met before),
refused as "an OTel Collector option that tracetriage does not implement" where it does not, and
reported once as not honoured where public configs commonly carry it. Never silently ignored."""

from __future__ import annotations

import pytest

from collector.component import ComponentID
from collector.config import ConfigError
from collector.config.schema import NOT_IMPLEMENTED_MESSAGE
from collector.config.service import CollectorConfig, load_config
from collector.registry import Registry

REGISTRY = Registry.default()
BASE = ("receivers: {otlp: {protocols: {grpc: {endpoint: 'localhost:4317'}}}}\n"
        "exporters: {debug: {}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n")


def load(*overrides: str, env: dict[str, str] | None = None) -> CollectorConfig:
    """BASE with ``yaml:`` sources merged over it, validated."""
    return load_config([f"yaml:{BASE}", *(f"yaml:{o}" for o in overrides)], REGISTRY, env or {})


def refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(*overrides)
    return "\n".join(i.message if not i.path else f"{i.path}: {i.message}" for i in info.value.issues)


# -- what was refused and is now accepted --------------------------------------------------------------------

def test_names_and_layouts_users_have_are_accepted() -> None:
    cfg = load(
        "exporters: {otlp_grpc/a: {endpoint: 'a:4317'}, otlp_http/b: {endpoint: 'https://b'}}",
        "service: {pipelines: {traces: {exporters: [otlp_grpc/a, otlp_http/b]}}}",
        "receivers: {otlp: {protocols: {http: {cors: {allowed_origins: ['https://*.shop.test'], max_age: 60}}}}}",
        "exporters: {file: {path: /tmp/x.json, rotation: {max_megabytes: 10}}}",
        "receivers: {kafka: {tls: {ca_file: /etc/ca.pem}}}",
        "exporters: {kafka: {tls: {insecure: true}}}",
        "service: {telemetry: {metrics: {readers: [{pull: {exporter: {prometheus: {host: 0.0.0.0, port: 9999}}}}]}, "
        "resource: {service.namespace: shop}, logs: {processors: [{batch: {exporter: {otlp: {endpoint: x}}}}]}}}",
        "processors: {tail_sampling: {policies: [{name: a, type: string_attribute, string_attribute: {key: k, "
        "values: []}}, {name: b, type: trace_state, trace_state: {key: k, values: []}}]}}",
    )
    assert cfg.exporters[ComponentID("otlp_grpc", "a")].factory.type == "otlp"
    assert cfg.exporters[ComponentID("otlp_http", "b")].factory.type == "otlphttp"
    assert cfg.service.telemetry.metrics.endpoints == ("0.0.0.0:9999",)
    assert cfg.service.telemetry.resource_attributes == {"service.namespace": "shop"}


def test_telemetry_that_is_not_honoured_is_reported_once() -> None:
    cfg = load("service: {telemetry: {logs: {processors: [{simple: {exporter: {console: {}}}}]}, "
               "metrics: {readers: [{periodic: {exporter: {otlp: {endpoint: x}}}}, "
               "{pull: {exporter: {prometheus: {port: 8889}}}}]}, traces: {processors: []}}}")
    assert [f"{w.path}: {w.message}" for w in cfg.warnings] == [
        "service.telemetry.logs.processors: exporting the collector's own logs is not implemented; they go to stderr",
        "service.telemetry.metrics.readers[0].periodic: pushing the collector's own metrics is not implemented; "
        "scrape /metrics (a pull reader) instead",
        "service.telemetry.traces: the collector does not trace itself; this section has no effect",
    ]
    assert cfg.service.telemetry.metrics.endpoints == ("localhost:8889",)


def test_telemetry_metrics_layouts() -> None:
    assert load().service.telemetry.metrics.endpoints == ("localhost:8888",)
    assert load("service: {telemetry: {metrics: {address: ''}}}").service.telemetry.metrics.endpoints == ()
    assert load("service: {telemetry: {metrics: {level: none}}}").service.telemetry.metrics.endpoints == ()
    assert load("service: {telemetry: {resource: {attributes: [{name: a, value: 1}, {name: b, value: null}]}}}"
                ).service.telemetry.resource_attributes == {"a": "1", "b": None}


# -- refused: upstream has it, tracetriage does not ----------------------------------------------------------

NOT_IMPLEMENTED = [
    ("receivers: {otlp: {protocols: {grpc: {read_buffer_size: 524288}}}}",
     "receivers.otlp.protocols.grpc.read_buffer_size", ""),
    ("receivers: {otlp: {protocols: {http: {metrics_url_path: /m}}}}", "receivers.otlp.protocols.http.metrics_url_path",
     "tracetriage accepts traces only"),
    ("receivers: {otlp: {protocols: {http: {response_headers: {a: b}}}}}",
     "receivers.otlp.protocols.http.response_headers", ""),
    ("exporters: {otlp_grpc: {endpoint: 'x:1', tls: {reload_interval: 1h}}}", "exporters.otlp_grpc.tls.reload_interval",
     ""),
    ("exporters: {otlp_grpc: {endpoint: 'x:1', tls: {ca_pem: '---'}}}", "exporters.otlp_grpc.tls.ca_pem",
     "use ca_file"),
    ("exporters: {file: {path: /tmp/x, group_by: {enabled: true}}}", "exporters.file.group_by", ""),
    ("exporters: {kafka: {metadata: {full: false}}}", "exporters.kafka.metadata", ""),
    ("receivers: {kafka: {auth: {kerberos: {realm: R}}}}", "receivers.kafka.auth.kerberos", "use auth.sasl"),
    ("service: {telemetry: {logs: {sampling: {enabled: false}}}}", "service.telemetry.logs.sampling",
     "every record is logged"),
    ("service: {telemetry: {logs: {output_paths: [stdout]}}}", "service.telemetry.logs.output_paths",
     "logs go to stderr"),
    ("service: {telemetry: {metrics: {views: []}}}", "service.telemetry.metrics.views", ""),
    ("service: {telemetry: {metrics: {readers: [{pull: {exporter: {prometheus: {without_units: true}}}}]}}}",
     "service.telemetry.metrics.readers[0].pull.exporter.prometheus.without_units", ""),
    ("service: {telemetry: {resource: {detection/development: {detectors: [{host: {}}]}}}}",
     "service.telemetry.resource.detection/development", "list the attributes instead"),
]


@pytest.mark.parametrize(("override", "path", "hint"), NOT_IMPLEMENTED, ids=[c[1] for c in NOT_IMPLEMENTED])
def test_upstream_options_not_implemented_are_refused_as_such(override: str, path: str, hint: str) -> None:
    text = refusal(override)
    expected = f"{path}: {NOT_IMPLEMENTED_MESSAGE}" + (f"; {hint}" if hint else "")
    assert expected in text.splitlines(), text


@pytest.mark.parametrize(("override", "message"), [
    ("exporters: {file: {path: /tmp/x, append: true, rotation: {}}}",
     "exporters.file: append and rotation enabled at the same time is not supported (as in the OTel Collector)"),
    ("service: {telemetry: {metrics: {address: 'localhost:1', readers: [{pull: {exporter: {prometheus: {}}}}]}}}",
     "service.telemetry.metrics.address: give readers or address, not both"),
    ("service: {telemetry: {metrics: {readers: [{}]}}}",
     "service.telemetry.metrics.readers[0]: give exactly one of pull, periodic"),
    ("service: {telemetry: {resource: {attributes_list: 'a=b'}}}",
     "service.telemetry.resource.attributes_list: not supported (as in the OTel Collector): use resource.attributes"),
    ("receivers: {kafka: {auth: {plain_text: {username: u}}}}",
     "receivers.kafka.auth.plain_text.password: is required"),
    ("exporters: {bogus_exporter: {}}", "exporters.bogus_exporter: unknown exporter type 'bogus_exporter'"),
])
def test_other_refusals_say_why(override: str, message: str) -> None:
    text = refusal(override)
    assert any(line.startswith(message) for line in text.splitlines()), text
