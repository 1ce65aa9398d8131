"""The documentation matches the code.

* Every registered component has a page, ``docs/components/<kind>s/<type>.md``, and the page's option
  tables (header ``| option | default | description |``) list exactly the option key paths of the
  component's config dataclass: no option left out, none that the code does not know. A page whose
  component is not registered (yet) is skipped, not failed.
* The ``tail_sampling`` page lists every policy ``type`` in a table whose header starts ``| policy |``.
* README.md stays short and starts with the quick start; no published document speaks of sessions or
  numbered issues.

Key paths follow the convention of ``docs/components/README.md``. They are computed from the config
dataclasses the way :class:`collector.config.schema.Decoder` reads them (``get_type_hints`` over
``dataclasses.fields``, through ``Annotated``, ``X | None``, unions, ``list``/``tuple`` and ``dict``):

* nested blocks join with ``.``: ``protocols.grpc.endpoint``;
* a list of blocks adds ``[]``: ``policies[].latency.threshold_ms``;
* a mapping of blocks adds ``.*``: ``name.*.key``;
* a field named with a trailing underscore (a Python keyword) is written as its YAML alias: ``and``,
  ``not``, ``continue``;
* every block is itself a row, as well as each of its keys;
* a block whose config class shares a dataclass base with a block it sits in (nested routes,
  sub-policies) repeats that block's keys: it is one row, and its keys are not listed again.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from collector.registry import Registry
from pipelines.tail_sampling.policies import registry as policy_registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
COMPONENT_DOCS = DOCS / "components"
OPTION_HEADER = ["option", "default", "description"]
README_MAX_BYTES = 20_000

_REGISTRY = Registry.default(plugins=False)
_FACTORIES = {f"{e.factory.kind.section}/{e.factory.type}": e.factory for e in _REGISTRY.entries()}
_PAGES = {f"{p.parent.name}/{p.stem}": p for p in COMPONENT_DOCS.glob("*/*.md")}


# -- option key paths from the config dataclasses ---------------------------------------------------------

def _key(f: dataclasses.Field[Any]) -> str:
    alias = f.metadata.get("alias")
    return str(alias) if alias and f.name.endswith("_") else f.name


def _members(tp: Any) -> Iterator[tuple[Any, str]]:
    """The types a field's value may take, each with the path suffix its nested keys get."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        yield from _members(get_args(tp)[0])
    elif origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if arg is not type(None):
                yield from _members(arg)
    elif origin in (list, tuple):
        yield get_args(tp)[0], "[]"
    elif origin is dict:
        yield get_args(tp)[1], ".*"
    else:
        yield tp, ""


def _dataclass_bases(cls: type) -> set[type]:
    return {c for c in cls.__mro__ if dataclasses.is_dataclass(c)}


def _nested(tp: Any) -> Iterator[tuple[type, str]]:
    for member, suffix in _members(tp):
        if isinstance(member, type) and dataclasses.is_dataclass(member):
            yield member, suffix


def option_paths(cls: type) -> set[str]:
    """Every option key path of a component config class (see the module docstring)."""
    out: set[str] = set()

    def walk(block: type, prefix: str, enclosing: tuple[type, ...]) -> None:
        hints = get_type_hints(block, include_extras=True)
        for f in dataclasses.fields(block):
            if not f.init:
                continue
            if issubclass(block, policy_registry.PolicyConfig) and f.name == "settings":
                # A policy entry's settings block is named like its type, one per registered policy.
                for type_name in policy_registry.names():
                    settings = policy_registry.policy_class(type_name).config_class
                    if settings is not None:
                        out.add(prefix + type_name)
                        walk(settings, f"{prefix}{type_name}.", (*enclosing, settings))
                out.update(prefix + refused for refused in policy_registry.REFUSED)
                continue
            path = prefix + _key(f)
            out.add(path)
            for nested, suffix in _nested(hints[f.name]):
                if any(_dataclass_bases(nested) & _dataclass_bases(e) for e in enclosing):
                    continue  # the same keys as an enclosing block: documented there
                walk(nested, f"{path}{suffix}.", (*enclosing, nested))

    walk(cls, "", (cls,))
    return out


@dataclasses.dataclass(frozen=True)
class _Leaf:
    value: int = 0


@dataclasses.dataclass(frozen=True)
class _Node:
    name: str = ""
    continue_: bool = dataclasses.field(default=False, metadata={"alias": "continue"})
    children: tuple[_Node, ...] = ()
    leaf: _Leaf | None = None
    leaves: tuple[_Leaf, ...] = ()
    by_name: dict[str, _Leaf] = dataclasses.field(default_factory=dict)


def test_option_paths_follow_the_convention() -> None:
    assert option_paths(_Node) == {
        "name", "continue", "children", "leaf", "leaf.value", "leaves", "leaves[].value", "by_name",
        "by_name.*.value",
    }


# -- option tables in the pages ---------------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(text: str, header: list[str]) -> Iterator[list[list[str]]]:
    """The body rows of every markdown table whose header starts with ``header``."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("|") and [c.lower() for c in _cells(line)][:len(header)] == header:
            rows = []
            i += 2  # the header and its separator row
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            yield rows
        else:
            i += 1


_FIRST_CODE = re.compile(r"`([^`]+)`")


def documented(text: str, header: list[str], what: str) -> list[str]:
    """The backticked names in the first column of the tables with ``header``, in order."""
    names = []
    for rows in _tables(text, header):
        for row in rows:
            m = _FIRST_CODE.search(row[0])
            if m is None:
                pytest.fail(f"a {what} table row has no `name` in its first column: | {' | '.join(row)} |")
            names.append(m.group(1))
    return names


def documented_options(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    headers = [_cells(line) for line in text.splitlines() if line.lstrip().startswith("|")]
    for cells in headers:
        if cells[0].lower() != "option":
            continue
        assert [c.lower() for c in cells] == OPTION_HEADER, (
            f"{page.relative_to(ROOT)}: option tables have the header | option | default | description |, "
            f"not | {' | '.join(cells)} |")
    return documented(text, OPTION_HEADER, "option")


def test_every_registered_component_has_a_page() -> None:
    missing = sorted(set(_FACTORIES) - set(_PAGES))
    assert not missing, "components without a page under docs/components/: " + ", ".join(
        f"{m}.md" for m in missing)


@pytest.mark.parametrize("name", sorted(set(_FACTORIES) | set(_PAGES)))
def test_component_page_documents_every_option(name: str) -> None:
    factory = _FACTORIES.get(name)
    page = _PAGES.get(name)
    if factory is None:
        pytest.skip(f"docs/components/{name}.md: no such component is registered yet")
    if page is None:
        pytest.fail(f"{name} is registered but docs/components/{name}.md does not exist")
    names = documented_options(page)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    expected = option_paths(factory.config_class)
    undocumented = sorted(expected - set(names))
    unknown = sorted(set(names) - expected)
    problems = []
    if undocumented:
        problems.append("options not documented: " + ", ".join(undocumented))
    if unknown:
        problems.append("documented options the config does not have: " + ", ".join(unknown))
    if duplicates:
        problems.append("options documented twice: " + ", ".join(duplicates))
    assert not problems, f"docs/components/{name}.md:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", sorted(_PAGES))
def test_component_page_has_an_example_and_metrics(name: str) -> None:
    text = _PAGES[name].read_text(encoding="utf-8")
    assert "```yaml" in text, f"docs/components/{name}.md has no YAML example"
    assert re.search(r"^## Metrics\b", text, re.MULTILINE), f"docs/components/{name}.md has no '## Metrics' section"


def _policy_types() -> set[str]:
    return set(policy_registry.names()) | set(policy_registry.REFUSED)


def test_tail_sampling_page_lists_every_policy_type() -> None:
    text = _PAGES["processors/tail_sampling"].read_text(encoding="utf-8")
    names = documented(text, ["policy"], "policy")
    assert names, "docs/components/processors/tail_sampling.md has no | policy | ... | table"
    expected = _policy_types()
    assert not expected - set(names), f"policy types not documented: {sorted(expected - set(names))}"
    assert not set(names) - expected, f"documented policy types that do not exist: {sorted(set(names) - expected)}"


# -- README and wording -----------------------------------------------------------------------------------

def test_readme_is_short_and_starts_with_the_quick_start() -> None:
    data = (ROOT / "README.md").read_bytes()
    assert len(data) <= README_MAX_BYTES, f"README.md is {len(data):,} bytes; keep it at most {README_MAX_BYTES:,}"
    sections = re.split(r"^## ", data.decode("utf-8"), flags=re.MULTILINE)
    assert len(sections) > 1, "README.md has no '## ' section"
    first = sections[1]
    assert first.splitlines()[0].strip().lower() == "quick start", "README.md's first section is not 'Quick start'"
    for command in ("./scripts/demo", "./scripts/test"):
        assert command in first, f"README.md's quick start does not show {command}"


_SESSION = re.compile(r"\bsessions?\b", re.IGNORECASE)
_ISSUE = re.compile(r"\bissues?\s*(#\s*\w+|\d+)", re.IGNORECASE)


def _published() -> list[Path]:
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted(DOCS.rglob("*.md"))]


def test_docs_speak_of_dates_and_commits() -> None:
    found = []
    for path in _published():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for rx in (_SESSION, _ISSUE):
                m = rx.search(line)
                if m:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {m.group(0)!r}")
    assert not found, "name dates and commits instead of sessions and issues:\n  " + "\n  ".join(found)
