"""The config loader and validation under arbitrary input (hypothesis): any text, any bytes in a file, and the
shipped and corpus configs with any value replaced, removed or added anywhere give a loaded config or a
ConfigError whose every issue has a message; never another exception (a traceback for the user)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from collector.config import ConfigError
from collector.config.service import CollectorConfig, load_config
from collector.registry import Registry
from tests.collector.config import CORPUS, ROOT
from tests.collector.config.test_corpus import CORPUS_ENV

REGISTRY = Registry.default()
# The environment the corpus configs' deployments give them, so that the seeds load before they are changed.
ENV = {k: v for env, _ in CORPUS_ENV.values() for k, v in env.items()}
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SEEDS = [yaml.safe_load(p.read_text()) for p in sorted([*(ROOT / "configs").glob("*.yaml"), *CORPUS.glob("*.yaml")])]
SEEDS = [s for s in SEEDS if isinstance(s, dict) and "receivers" in s]
# Keys users write, so that added keys sometimes name real options.
WORDS = ["endpoint", "timeout", "limit_mib", "policies", "protocols", "grpc", "http", "tls", "auth", "insecure",
         "brokers", "topic", "decision_wait", "num_traces", "type", "name", "signals", "address", "level",
         "receivers", "processors", "exporters", "extensions", "pipelines", "traces", "otlp", "batch", "debug",
         "health_check", "file", "path", "authenticator", "key_file", "cert_file", "max_recv_msg_size_mib"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**66), 2**66), st.floats(), st.text(max_size=20),
    st.sampled_from(["0.0.0.0:4317", "localhost:-1", "10s", "-5m", "1e400", "${env:X}", "${env:X:-1}", "${",
                     "$${env:X}", "[", "*", "0x10", "512MiB", "ERROR", "nan", ":", "a/b/c", "otlp/x", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(WORDS) | st.text(max_size=8), inner, max_size=3), max_leaves=8)


def loads_or_refuses(sources: list[str]) -> CollectorConfig | None:
    """The property: a config, or ConfigError with issues that each say what is wrong."""
    try:
        return load_config(sources, REGISTRY, ENV)
    except ConfigError as e:
        assert e.issues
        for issue in e.issues:
            assert issue.message.strip(), issue
        assert str(e)
        return None


def as_source(doc: Any) -> str:
    return "yaml:" + yaml.safe_dump(doc, allow_unicode=True)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A seed config with one to four changes at random places: a value replaced, a key removed or added,
    a list item removed or added."""
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        node: Any = doc
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
            children = [k for k in keys if isinstance(node[k], dict | list)]
            if not children or draw(st.integers(0, 3)) == 0:
                break
            node = node[draw(st.sampled_from(children))]
        if isinstance(node, dict):
            action = draw(st.sampled_from(["replace", "remove", "add"])) if node else "add"
            if action == "add":
                node[draw(st.sampled_from(WORDS) | st.text(max_size=8))] = draw(values)
            else:
                key = draw(st.sampled_from(sorted(node, key=str)))
                if action == "remove":
                    del node[key]
                else:
                    node[key] = draw(values)
        elif isinstance(node, list):
            if node and draw(st.booleans()):
                del node[draw(st.integers(0, len(node) - 1))]
            else:
                node.insert(draw(st.integers(0, len(node))), draw(values))
    return doc


def test_seeds_load() -> None:
    """The seeds themselves: the shipped configs and the corpus load."""
    assert len(SEEDS) >= 10
    refused = [i for i, s in enumerate(SEEDS) if loads_or_refuses([as_source(s)]) is None]
    assert not refused


@FAST
@given(mutated())
def test_mutated_configs(doc: Any) -> None:
    event("loaded" if loads_or_refuses([as_source(doc)]) is not None else "refused")


@FAST
@given(st.dictionaries(st.sampled_from(["receivers", "processors", "exporters", "extensions", "service",
                                        "connectors"]), values, max_size=5))
def test_arbitrary_top_level_mappings(doc: dict[str, Any]) -> None:
    loads_or_refuses([as_source(doc)])


@FAST
@given(st.text(max_size=200))
def test_arbitrary_yaml_text(text: str) -> None:
    loads_or_refuses([f"yaml:{text}"])


@FAST
@given(data=st.binary(max_size=200))
def test_arbitrary_file_bytes(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    loads_or_refuses([str(path)])

