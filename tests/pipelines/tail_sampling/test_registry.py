"""The policy registry: every entry is a policy class with its settings dataclass in its own module, every
policy module is registered, placements are contrib's, and the documented policy table lists exactly the
registry's types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.tail_sampling.policies import Placement, PolicyClass, registry

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "pipelines" / "tail_sampling" / "policies"
COMPONENT_DOC = ROOT / "docs" / "components" / "processors" / "tail_sampling.md"
NOT_POLICIES = {"__init__", "base", "registry"}


@pytest.mark.parametrize("type_name", registry.names())
def test_entry_is_a_policy_class_with_its_settings_in_its_module(type_name: str) -> None:
    cls = registry.policy_class(type_name)
    assert isinstance(cls, PolicyClass)
    target = registry.POLICIES[type_name]
    assert isinstance(target, str)
    module = target.partition(":")[0]
    assert module.rstrip("_") == type_name  # the module is named for the type (``and_`` for ``and``)
    assert cls.__module__ == f"pipelines.tail_sampling.policies.{module}"
    if cls.config_class is not None:
        assert cls.config_class.__module__ == cls.__module__


def test_every_policy_module_is_registered() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - NOT_POLICIES
    registered = {str(t).partition(":")[0] for t in registry.POLICIES.values()}
    assert modules == registered


def test_placements_are_contribs() -> None:
    """and: top level or in a composite; not, drop, composite: top level; the rest anywhere."""
    placements = {n: registry.policy_class(n).placement for n in registry.names()}
    assert placements.pop("and") == Placement.TOP | Placement.COMPOSITE
    for name in ("not", "drop", "composite"):
        assert placements.pop(name) == Placement.TOP
    assert set(placements.values()) == {Placement.ANYWHERE}
    assert set(registry.REFUSED) == {"ottl_condition"}


def policy_table(markdown: str) -> list[str]:
    """The first column of the table whose header's first cell is the policy type (``type``, ``policy`` or
    ``policy type``): one backticked type name per row."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines[:-1]):
        cells = [c.strip().strip("`").lower() for c in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or cells[0] not in ("type", "policy", "policy type"):
            continue
        if not re.match(r"^\s*\|?\s*:?-+", lines[i + 1]):
            continue
        names: list[str] = []
        for row in lines[i + 2:]:
            if not row.lstrip().startswith("|"):
                break
            first = row.strip().strip("|").split("|")[0].strip()
            m = re.fullmatch(r"`([a-z_]+)`", first)
            assert m, f"{COMPONENT_DOC.name}: first cell {first!r} is not one policy type in backticks"
            names.append(m.group(1))
        return names
    raise AssertionError(f"{COMPONENT_DOC}: no table whose first column is the policy type")


def test_policy_table_parser() -> None:
    doc = "| key | default |\n|---|---|\n| `decision_wait` | 30s |\n\n| type | settings |\n| --- | --- |\n" \
          "| `latency` | `threshold_ms` |\n| `and` | `and_sub_policy` |\n\ntext\n"
    assert policy_table(doc) == ["latency", "and"]


@pytest.mark.skipif(not COMPONENT_DOC.exists(), reason=f"{COMPONENT_DOC.relative_to(ROOT)} is not written yet")
def test_documented_policy_types_are_the_registrys() -> None:
    documented = policy_table(COMPONENT_DOC.read_text())
    assert len(documented) == len(set(documented)), "a policy type is listed twice"
    assert set(documented) - set(registry.REFUSED) == set(registry.names())
