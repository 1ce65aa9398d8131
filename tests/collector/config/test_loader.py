"""Substitution and sources as otelcol resolves them: ``${NAME}`` is ``${env:NAME}``, an unset variable is an
empty string and a warning, a whole-value reference keeps its text for string options, ``--set`` and
``::`` key paths, and the YAML scalars of yaml.v3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from collector.config import ConfigError, decode, safe_yaml
from collector.config.loader import load, merge, set_source, substitute_env, unflatten
from collector.config.schema import Expanded


def sub(value: object, env: dict[str, str]) -> tuple[object, list[str], list[str]]:
    issues: list = []
    warnings: list = []
    out = substitute_env(value, "", issues, env, warnings)
    return out, [f"{i.path}: {i.message}" for i in issues], [f"{w.path}: {w.message}" for w in warnings]


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${HOST}:4317", {"HOST": "collector"}, "collector:4317"),  # the default scheme is env
    ("${env:HOST}:${PORT}", {"HOST": "h", "PORT": "1"}, "h:1"),
    ("${env:MISSING:-fallback}", {}, "fallback"),
    ("${env:MISSING:-}", {}, ""),
    ("${env:SET:-fallback}", {"SET": ""}, ""),  # set but empty is not unset
    ("a $${env:HOST} b", {"HOST": "h"}, "a ${env:HOST} b"),
    ("cost: $$5", {}, "cost: $5"),
    ("no reference here", {}, "no reference here"),
    ("${env:URL:-http://x:1/y}", {}, "http://x:1/y"),
])
def test_substitution(text: str, env: dict[str, str], expected: str) -> None:
    out, issues, warnings = sub({"k": text}, env)
    assert out == {"k": expected} and not issues and not warnings


def test_an_unset_variable_is_an_empty_string_and_a_warning_naming_it() -> None:
    out, issues, warnings = sub({"a": "${UNSET_A}", "b": "x-${env:UNSET_A}-${UNSET_B}", "c": ["${UNSET_A}"]}, {})
    assert out == {"a": "", "b": "x--", "c": [""]}
    assert not issues
    assert warnings == ["a: environment variable UNSET_A is not set; using an empty string",
                        "b: environment variable UNSET_B is not set; using an empty string"]  # once per name


@pytest.mark.parametrize(("text", "message"), [
    ("${file:/etc/x}", "unsupported reference ${file:/etc/x}: tracetriage substitutes ${env:NAME} and ${NAME} only"),
    ("${HOST:-localhost}", "unsupported reference ${HOST:-localhost}: a default needs the env scheme: "
                           "${env:HOST:-localhost}"),
    ("${env:9LIVES}", "invalid environment variable name '9LIVES'"),
    ("${}", "invalid environment variable name ''"),
])
def test_bad_references_are_errors(text: str, message: str) -> None:
    _, issues, _ = sub({"k": text}, {})
    assert len(issues) == 1 and issues[0].startswith("k: " + message)


@dataclass(frozen=True)
class Typed:
    port: int = 0
    ratio: float = 0.0
    enabled: bool = False
    name: str = ""
    version: Literal["1.2", "1.3"] = "1.2"
    anything: object = None


def test_a_whole_value_reference_takes_the_yaml_type_but_strings_keep_the_text() -> None:
    env = {"PORT": "4317", "RATIO": "0.5", "ON": "true", "ID": "0123", "V": "1.3", "LIST": "[a, b]"}
    raw, _, _ = sub({"port": "${PORT}", "ratio": "${RATIO}", "enabled": "${ON}", "name": "${ID}",
                     "version": "${V}", "anything": "${LIST}"}, env)
    assert isinstance(raw, dict) and isinstance(raw["port"], Expanded)
    cfg = decode(Typed, raw)
    assert cfg == Typed(port=4317, ratio=0.5, enabled=True, name="0123", version="1.3", anything=["a", "b"])
    raw, _, _ = sub({"name": "${env:PASS}"}, {"PASS": "true"})  # a password that looks like a boolean
    assert decode(Typed, raw).name == "true"
    raw, _, _ = sub({"port": "${PORT}"}, {"PORT": "many"})
    with pytest.raises(ConfigError, match="port: must be an integer, got 'many'"):
        decode(Typed, raw)


def test_set_becomes_a_yaml_uri() -> None:
    assert set_source("processors.batch.timeout=2s") == "yaml:processors::batch::timeout: 2s"
    assert set_source(" a.b = [x, y] ") == "yaml:a::b: [x, y]"
    assert set_source("a=b=c") == "yaml:a: b=c"
    for bad in ("no-equal-sign", "=value"):
        with pytest.raises(ValueError):
            set_source(bad)


def test_key_paths_with_double_colons_nest_and_merge() -> None:
    assert unflatten({"a::b::c": 1, "a": {"d": 2}, "x": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "x": 3}
    assert merge({"a": [1], "b": {"c": 1}}, {"a": [2], "b": {"d": 2}}) == {"a": [2], "b": {"c": 1, "d": 2}}
    joined = merge({"service": {"extensions": ["a"], "pipelines": {"traces": {"receivers": ["r"],
                                                                               "processors": ["p"]}}}},
                   {"service": {"extensions": ["b", "a"], "pipelines": {"traces": {"receivers": ["s"],
                                                                                   "processors": ["q"]}}}},
                   append=True)
    assert joined["service"]["extensions"] == ["a", "b"]
    assert joined["service"]["pipelines"]["traces"] == {"receivers": ["r", "s"], "processors": ["q"]}


def test_sources_are_named_and_substitution_errors_do_not_stop_loading(tmp_path: object) -> None:
    loaded = load(["yaml:a::b: ${file:x}", "env:CFG"], env={"CFG": "c: ${MISSING}"})
    assert loaded.raw == {"a": {"b": "${file:x}"}, "c": ""}
    assert [str(i) for i in loaded.issues] == [
        "yaml:a::b: ${file:x}: a.b: unsupported reference ${file:x}: tracetriage substitutes ${env:NAME} and "
        "${NAME} only"]
    assert [str(w) for w in loaded.warnings] == [
        "env:CFG: c: environment variable MISSING is not set; using an empty string"]
    assert loaded.sources == ("yaml:a::b: ${file:x}", "env:CFG")


@pytest.mark.parametrize(("text", "value"), [
    ("on", "on"), ("yes", "yes"), ("No", "No"), ("off", "off"),  # YAML 1.1 booleans are strings in 1.2
    ("true", True), ("False", False), ("~", None), ("null", None), ("", None),
    ("4317", 4317), ("-5", -5), ("0x1F", 31), ("0o17", 15), ("017", 15), ("0b101", 5), ("1_000", 1000),
    ("1.5", 1.5), ("1e3", 1000.0), (".5", 0.5),
    ("1:30", "1:30"), ("2026-12-07", "2026-12-07"), ("localhost:4317", "localhost:4317"), ("1.2.3", "1.2.3"),
])
def test_scalars_resolve_as_yaml_v3(text: str, value: object) -> None:
    assert safe_yaml.parse(f"k: {text}\n") == {"k": value}
    if text:
        assert safe_yaml.parse_scalar(text) == value


def test_merge_keys_still_work_and_only_explicit_duplicates_are_refused() -> None:
    doc = "base: &b {endpoint: x, tls: {insecure: true}}\none: {<<: *b, endpoint: y}\n"
    assert safe_yaml.parse(doc)["one"] == {"endpoint": "y", "tls": {"insecure": True}}
    with pytest.raises(safe_yaml.YAMLProblem, match=r"line 3, column 3: duplicate key 'k' \(first given at line 2"):
        safe_yaml.parse("m:\n  k: 1\n  k: 2\n")


def test_an_env_value_is_bounded_like_a_file() -> None:
    """A variable's value is parsed with the same limits: an alias bomb stays text, at once."""
    bomb = "\n".join(['a0: &a0 [x, x, x, x, x, x, x, x, x]',
                      *(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10))])
    out, issues, _ = sub({"k": "${BOMB}"}, {"BOMB": bomb})
    assert isinstance(out, dict) and out["k"] == bomb and not issues
