"""The ``ownership`` extension: one catalog shared by ``root_cause`` and ``alert_routing``.

A real collector (OTLP/gRPC receiver, the OpenTelemetry SDK as client, a webhook receiver on 127.0.0.1)
runs both stages against one extension: each catalog file is read once and each bad file counted once,
and both stages name the team from it. References are checked before anything starts, and again at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector import ComponentID, Host, Kind, Settings, Telemetry
from collector.config import ConfigError, decode
from collector.config.service import build_config
from collector.errors import ComponentStartError
from collector.registry import Registry
from collector.service import Service
from pipelines import root_cause
from pipelines.ownership import OwnershipExtension, resolver
from pipelines.ownership import factory as ownership_factory
from tests.conftest import free_port
from tests.pipelines.alert_routing.helpers import CaptureServer, sample
from tests.pipelines.ownership.test_ownership import SERVICES, TEAMS

ERRORS = "tracetriage_ownership_catalog_errors_total"


@pytest.fixture
def catalog(tmp_path: Path) -> dict[str, Path]:
    """Three catalog files: good, one with an invalid document, one that is not YAML."""
    directory = tmp_path / "catalog"
    directory.mkdir()
    files = {"good": directory / "teams.yaml", "partly": directory / "services.yaml",
             "broken": directory / "zz-broken.yaml"}
    files["good"].write_text(TEAMS)
    files["partly"].write_text(SERVICES + "---\nkind: Component\nmetadata: {annotations: {}}\n")
    files["broken"].write_text("kind: [unclosed\n")
    return files


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Catalog files read from disk, by path (the reader the ownership resolver calls, wrapped)."""
    counts: Counter[str] = Counter()
    real = resolver.read_catalog

    def counting(path: str) -> Any:
        counts[path] += 1
        return real(path)

    monkeypatch.setattr(resolver, "read_catalog", counting)
    return counts


def collector_config(port: int, hook: str, root_cause_ownership: Any, alert_routing_ownership: Any,
                     extensions: dict[str, Any]) -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {
            "root_cause": {"decision_wait": "5s", "ownership": root_cause_ownership},
            "alert_routing": {"ownership": alert_routing_ownership, "route": {"receiver": "hook"},
                              "receivers": [{"name": "hook", "webhook": {"url": hook}}]},
        },
        "exporters": {"debug": {}},
        "extensions": extensions,
        "service": {"extensions": list(extensions), "telemetry": {"metrics": {"address": ""}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["root_cause", "alert_routing"],
                                             "exporters": ["debug"]}}},
    }


def failing_trace() -> list[ReadableSpan]:
    """frontend place_order (error) -> payment charge (error): the root cause is payment, owned by payments."""
    memory = InMemorySpanExporter()
    providers = [TracerProvider(resource=Resource.create({"service.name": s})) for s in ("frontend", "payment")]
    for p in providers:
        p.add_span_processor(SimpleSpanProcessor(memory))
    frontend, payment = (p.get_tracer("test") for p in providers)
    with frontend.start_as_current_span("place_order", kind=SpanKind.SERVER) as order:
        with payment.start_as_current_span("charge", kind=SpanKind.SERVER) as charge:
            charge.set_status(Status(StatusCode.ERROR))
        order.set_status(Status(StatusCode.ERROR))
    for p in providers:
        p.shutdown()
    return list(memory.get_finished_spans())


async def run_collector(raw: dict[str, Any], port: int, telemetry: Telemetry) -> None:
    """Start a collector from ``raw``, send it one failing trace over OTLP/gRPC, shut it down (which decides
    the trace and sends the alerts)."""
    service = Service(build_config(raw, Registry.default(plugins=False)), telemetry)
    service.build()
    await service.start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)
        assert await asyncio.to_thread(exporter.export, failing_trace()) is SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        await service.shutdown()


async def test_stages_sharing_an_extension_read_each_catalog_file_once(
        catalog: dict[str, Path], reads: Counter[str]) -> None:
    hook = await CaptureServer().start()
    try:
        port, telemetry = free_port(), Telemetry()
        shared = {"catalog": [str(catalog["good"].parent / "*.yaml")], "default_team": "sre",
                  "reload_interval": "0s"}
        raw = collector_config(port, hook.url + "/hook", "ownership/shared", "ownership/shared",
                               {"ownership/shared": shared})
        await run_collector(raw, port, telemetry)
    finally:
        await hook.stop()
    assert reads == {str(p): 1 for p in catalog.values()}
    assert sample(telemetry, ERRORS, file=str(catalog["broken"])) == 1  # not YAML
    assert sample(telemetry, ERRORS, file=str(catalog["partly"])) == 1  # one document without a name
    assert sample(telemetry, ERRORS, file=str(catalog["good"])) == 0
    # Both stages named the team from the shared catalog.
    assert sample(telemetry, "tracetriage_root_causes_total", signal="root", service="payment", team="payments",
                  kind="error") == 1
    (page,) = hook.received
    assert [a["labels"]["team"] for a in page.body["alerts"]] == ["payments"]


async def test_inline_blocks_are_private_catalogs(catalog: dict[str, Path], reads: Counter[str]) -> None:
    """The shorthand: each stage's inline block is its own catalog (each file read, each problem counted,
    once per stage)."""
    hook = await CaptureServer().start()
    try:
        port, telemetry = free_port(), Telemetry()
        inline = {"catalog": [str(catalog["good"].parent / "*.yaml")], "reload_interval": "0s"}
        await run_collector(collector_config(port, hook.url + "/hook", inline, inline, {}), port, telemetry)
    finally:
        await hook.stop()
    assert reads == {str(p): 2 for p in catalog.values()}
    assert sample(telemetry, ERRORS, file=str(catalog["broken"])) == 2
    assert sample(telemetry, "tracetriage_root_causes_total", signal="root", service="payment", team="payments",
                  kind="error") == 1
    assert [a["labels"]["team"] for a in hook.received[0].body["alerts"]] == ["payments"]


@pytest.mark.parametrize(("ownership", "extensions", "listed", "message"), [
    ("ownership/prod", {"ownership": {}}, ["ownership"],
     "references extension 'ownership/prod', which is not defined in extensions"),
    ("ownership", {"ownership": {}}, [], "extension 'ownership' must be listed in service.extensions to be used"),
    ("health_check", {"health_check": {}}, ["health_check"],
     "'health_check' is not an ownership extension (use ownership or ownership/<name>)"),
    ("ownership/", {}, [], "must be the id of an ownership extension (ownership or ownership/<name>)"),
])
def test_references_are_checked_before_start(ownership: str, extensions: dict[str, Any], listed: list[str],
                                             message: str) -> None:
    raw = collector_config(4317, "http://127.0.0.1:9/hook", ownership, {"default_team": "sre"}, extensions)
    raw["service"]["extensions"] = listed
    with pytest.raises(ConfigError) as err:
        build_config(raw, Registry.default(plugins=False))
    (issue,) = err.value.issues
    assert issue.path == "processors.root_cause.ownership"
    assert issue.message.startswith(message)


def test_inline_block_errors_keep_their_key_path() -> None:
    raw = collector_config(4317, "http://127.0.0.1:9/hook", {"default_team": ""}, {"reload_interval": "-1s"}, {})
    with pytest.raises(ConfigError) as err:
        build_config(raw, Registry.default(plugins=False))
    assert sorted(i.path for i in err.value.issues) == [
        "processors.alert_routing.ownership.reload_interval", "processors.root_cause.ownership.default_team"]


def settings(kind: Kind, name: str) -> Settings:
    return Settings(ComponentID.parse(name), kind, Telemetry(), logging.getLogger(f"test.{name}"))


async def test_a_reference_missing_at_start_is_a_start_error() -> None:
    """Without the config layer (a stage built by hand): found at start, with the key and the id."""
    stage = root_cause.create(settings(Kind.PROCESSOR, "root_cause"),
                              decode(root_cause.Config, {"ownership": "ownership/prod"}))
    with pytest.raises(ComponentStartError, match=r"processor root_cause: cannot start: ownership: "
                                                  r"'ownership/prod' is not a running extension"):
        await stage.start(Host())
    host = Host()
    host.extensions[ComponentID.parse("ownership/prod")] = stage  # some other component under that id
    with pytest.raises(ComponentStartError, match="is not an ownership extension"):
        await stage.start(host)


async def test_extension_without_any_loadable_file_fails_to_start(tmp_path: Path) -> None:
    config = decode(ownership_factory.config_class, {"catalog": [str(tmp_path / "missing.yaml")]})
    extension = ownership_factory.create(settings(Kind.EXTENSION, "ownership"), config)
    assert isinstance(extension, OwnershipExtension)
    with pytest.raises(ComponentStartError, match=r"extension ownership: cannot start: no catalog file could be "
                                                  r"loaded.*missing\.yaml not found"):
        await extension.start(Host())
    await extension.shutdown()
    await extension.shutdown()  # idempotent
