"""The recipe ``docs/recipes/tail_sampling_policy.md``, followed as written.

Its module is written into the policies package (a directory added to the package's path for the test), its
one registry line is added to the table, and its config is loaded from files by the real loader and run
by a real collector: the OpenTelemetry SDK sends two traces over OTLP/gRPC, the new policy keeps the one
with a SERVER span, and the file exporter receives only that one.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import pipelines.tail_sampling.policies as policies_package
from collector.config import ConfigError
from collector.config.service import load_config
from collector.otlpjson import decode_request
from collector.registry import Registry
from collector.service import Service
from pipelines.tail_sampling.policies import registry
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "docs" / "recipes" / "tail_sampling_policy.md"
BLOCK = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```$", re.S | re.M)


def recipe_blocks() -> dict[str, str]:
    """The recipe's code blocks that name a file: file -> text."""
    return {m.group(2): m.group(3) for m in BLOCK.finditer(RECIPE.read_text()) if m.group(2)}


@pytest.fixture
def recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Steps 1 and 2 of the recipe: the module in the policies package, its line in the registry table."""
    blocks = recipe_blocks()
    (module_path,) = [f for f in blocks if f.startswith("pipelines/tail_sampling/policies/") and
                      not f.endswith("/registry.py")]
    assert not (ROOT / module_path).exists(), "the recipe's example must be a policy the project does not have"
    package_dir = tmp_path / "policies"
    package_dir.mkdir()
    (package_dir / Path(module_path).name).write_text(blocks[module_path])
    monkeypatch.setattr(policies_package, "__path__", [*policies_package.__path__, str(package_dir)])
    line = blocks["pipelines/tail_sampling/policies/registry.py"].strip()
    for type_name, target in ast.literal_eval("{" + line + "}").items():
        assert type_name not in registry.POLICIES
        monkeypatch.setitem(registry.POLICIES, type_name, target)
    module_name = "pipelines.tail_sampling.policies." + Path(module_path).stem
    try:
        yield blocks
    finally:
        sys.modules.pop(module_name, None)


def write_configs(tmp_path: Path, policy_config: str, grpc_port: int, out: Path) -> list[str]:
    """The recipe's config file, and one with the rest of a collector around it."""
    policy_file = tmp_path / "tail_sampling.yaml"
    policy_file.write_text(policy_config)
    rest = tmp_path / "collector.yaml"
    rest.write_text(yaml.safe_dump({
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}}}},
        "exporters": {"file": {"path": str(out), "flush_interval": "0s"}},
        "service": {"telemetry": {"metrics": {"address": ""}}, "pipelines": {"traces": {
            "receivers": ["otlp"], "processors": ["tail_sampling"], "exporters": ["file"]}}},
    }))
    return [str(rest), str(policy_file)]


def make_traces() -> tuple[list[ReadableSpan], bytes, bytes]:
    """Two traces: one whose root is a SERVER span, one of INTERNAL spans only; returns their trace ids."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("recipe")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as server, \
            tracer.start_as_current_span("load cart"):
        pass
    with tracer.start_as_current_span("nightly job", kind=SpanKind.INTERNAL) as job, \
            tracer.start_as_current_span("step"):
        pass
    provider.shutdown()
    ids = (server.get_span_context().trace_id.to_bytes(16, "big"), job.get_span_context().trace_id.to_bytes(16, "big"))
    return list(memory.get_finished_spans()), *ids


async def test_recipe_policy_loads_validates_and_samples(recipe: dict[str, str], tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "out.jsonl"
    config = load_config(write_configs(tmp_path, recipe["config.yaml"], port, out), Registry.default(plugins=False),
                         env={})
    (policy,) = config.processors[next(iter(config.processors))].config.policies
    assert policy.type == "span_kind" and type(policy.settings).__name__ == "SpanKindConfig"

    spans, kept_id, dropped_id = make_traces()
    service = Service(config)
    service.build()
    await service.start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)
        assert await asyncio.to_thread(exporter.export, spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        await service.shutdown()  # decides the traces still waiting (decision_wait: 1s), then flushes the file

    written = [decode_request(line.encode()) for line in out.read_text().splitlines() if line.strip()]
    trace_ids = {span.trace_id for req in written for rs in req.resource_spans for ss in rs.scope_spans
                 for span in ss.spans}
    span_names = {span.name for req in written for rs in req.resource_spans for ss in rs.scope_spans
                  for span in ss.spans}
    assert trace_ids == {kept_id} and dropped_id not in trace_ids
    assert span_names == {"GET /cart", "load cart"}  # the whole trace is kept


def test_recipe_policy_errors_name_their_key_path(recipe: dict[str, str], tmp_path: Path) -> None:
    bad = recipe["config.yaml"].replace("kinds: [SERVER, CONSUMER]", "kinds: []")
    assert bad != recipe["config.yaml"]
    with pytest.raises(ConfigError) as err:
        load_config(write_configs(tmp_path, bad, free_port(), tmp_path / "out.jsonl"), Registry.default(plugins=False),
                    env={})
    documented = re.search(r"```text\n(.*?)\n```", RECIPE.read_text(), re.S)
    assert documented is not None
    assert [i.path + ": " + i.message for i in err.value.issues] == [documented.group(1)]


def test_recipe_policy_stands_in_sub_policy_lists(recipe: dict[str, str], tmp_path: Path) -> None:
    entry = {"name": "servers", "type": "span_kind", "span_kind": {"kinds": ["SERVER"]}}
    policies: list[dict[str, Any]] = [
        {"name": "not-servers", "type": "not", "not": {"not_sub_policy": entry}},
        {"name": "both", "type": "and", "and": {"and_sub_policy": [entry, {"name": "all", "type": "always_sample"}]}},
        {"name": "drop-servers", "type": "drop", "drop": {"drop_sub_policy": [entry]}},
        {"name": "budget", "type": "composite", "composite": {"max_total_spans_per_second": 100,
                                                              "composite_sub_policy": [entry]}},
    ]
    config_text = yaml.safe_dump({"processors": {"tail_sampling": {"policies": policies}}})
    config = load_config(write_configs(tmp_path, config_text, free_port(), tmp_path / "out.jsonl"),
                         Registry.default(plugins=False), env={})
    built = [registry.build(p) for p in config.processors[next(iter(config.processors))].config.policies]
    assert [type(p).__name__ for p in built] == ["Not", "And", "Drop", "Composite"]


def test_register_a_policy_from_another_package(recipe: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented API for a policy outside the package, here with the class itself."""
    span_kind = importlib.import_module("pipelines.tail_sampling.policies.span_kind")
    monkeypatch.setattr(registry, "POLICIES", dict(registry.POLICIES))
    registry.register("entry_span_kind", span_kind.SpanKind)
    assert registry.policy_class("entry_span_kind") is span_kind.SpanKind
    with pytest.raises(ValueError, match="already defined"):
        registry.register("latency", span_kind.SpanKind)
    with pytest.raises(ValueError, match="lower-case"):
        registry.register("Span-Kind", span_kind.SpanKind)
