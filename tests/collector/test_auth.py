"""The ``auth`` contract in config: an authenticator is any extension defined and listed in
service.extensions (its role is checked at start); errors name the key path of the reference."""

from __future__ import annotations

import pytest

from collector.config import ConfigError
from collector.config.service import CollectorConfig, load_config
from collector.registry import Registry

REGISTRY = Registry.default()
BASE = ("extensions: {bearertokenauth: {token: t0ken-value}, basicauth/client: {client_auth: {username: u, "
        "password: pw-value}}}\n"
        "receivers: {otlp: {protocols: {grpc: {endpoint: 'localhost:4317'}}}}\n"
        "exporters: {debug: {}}\n"
        "service: {extensions: [bearertokenauth, basicauth/client], "
        "pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n")


def load(*overrides: str) -> CollectorConfig:
    return load_config([f"yaml:{BASE}", *(f"yaml:{o}" for o in overrides)], REGISTRY, {})


def errors(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(*overrides)
    return "\n".join(f"{i.path}: {i.message}" for i in info.value.issues)


def test_auth_accepted_on_receivers_and_exporters() -> None:
    cfg = load("receivers: {otlp: {protocols: {grpc: {auth: {authenticator: bearertokenauth}}, "
               "http: {auth: {authenticator: bearertokenauth}}}}}",
               "exporters: {otlphttp: {endpoint: 'https://backend', auth: {authenticator: basicauth/client}}}",
               "service: {pipelines: {traces: {exporters: [debug, otlphttp]}}}")
    http = cfg.receivers[next(iter(cfg.receivers))].config.protocols.http
    assert http.auth.authenticator == "bearertokenauth"


def test_references_are_checked_before_anything_starts() -> None:
    text = errors("receivers: {otlp: {protocols: {http: {auth: {authenticator: bearertokenauth/other}}}}}")
    assert ("receivers.otlp.protocols.http.auth.authenticator: references extension 'bearertokenauth/other', "
            "which is not defined in extensions") in text
    text = errors("extensions: {basicauth/unlisted: {htpasswd: {inline: 'a:b'}}}",
                  "receivers: {otlp: {protocols: {grpc: {auth: {authenticator: basicauth/unlisted}}}}}")
    assert ("receivers.otlp.protocols.grpc.auth.authenticator: extension 'basicauth/unlisted' must be listed in "
            "service.extensions to be used") in text
    text = errors("receivers: {otlp: {protocols: {grpc: {auth: {authenticator: 'bad id/'}}}}}")
    assert "receivers.otlp.protocols.grpc.auth.authenticator" in text
    text = errors("receivers: {otlp: {protocols: {grpc: {auth: {}}}}}")
    assert "receivers.otlp.protocols.grpc.auth.authenticator: is required" in text


def test_secrets_stay_out_of_errors() -> None:
    text = errors("extensions: {bearertokenauth: {tokens: [another-value]}}")
    assert "extensions.bearertokenauth.tokens: either tokens or token should be provided, not both" in text
    assert "t0ken-value" not in text and "another-value" not in text and "pw-value" not in text
