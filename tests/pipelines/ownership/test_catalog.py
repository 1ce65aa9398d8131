"""Parsing Backstage catalog files: entities, owner references, invalid documents, invalid YAML."""

from __future__ import annotations

import pytest

from pipelines.ownership import CatalogSyntaxError, normalise_team, parse_catalog

CATALOG = """
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payment
  annotations: {pagerduty.com/integration-key: comp-key}
spec: {type: service, owner: group:default/Payments, system: shop}
---
kind: Group
metadata:
  name: payments
  annotations: {pagerduty.com/integration-key: " group-key "}
spec: {type: team, parent: group:engineering, children: [group:payments-db]}
---
kind: System
metadata: {name: shop}
---
---
kind: Component
metadata: {name: cart}
spec: {owner: checkout}
"""


@pytest.mark.parametrize(
    ("ref", "team"),
    [
        ("payments", "payments"),
        ("group:payments", "payments"),
        ("group:default/payments", "payments"),
        ("default/payments", "payments"),
        ("  Group:Default/Payments ", "payments"),
        ("user:default/jdoe", "jdoe"),
        ("", ""),
    ],
)
def test_normalise_team(ref: str, team: str) -> None:
    assert normalise_team(ref) == team


def test_entities() -> None:
    cat = parse_catalog(CATALOG, "shop.yaml")
    assert cat.problems == ()
    payment, cart = cat.components
    assert (payment.name, payment.owner, payment.system, payment.pagerduty_key) == (
        "payment", "payments", "shop", "comp-key")
    assert (payment.file, payment.document) == ("shop.yaml", 1)
    assert (cart.name, cart.owner, cart.pagerduty_key, cart.document) == ("cart", "checkout", None, 5)
    (group,) = cat.groups
    assert (group.name, group.pagerduty_key, group.parent, group.children) == (
        "payments", "group-key", "engineering", ("payments-db",))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("kind: Component\nspec: {owner: a}", "metadata.name is missing"),
        ("kind: Component\nmetadata: {name: ''}\nspec: {owner: a}", "metadata.name is missing"),
        ("kind: Component\nmetadata: {name: x}\nspec: {owner: [a]}", "Component 'x': spec.owner must be a string"),
        ("kind: Component\nmetadata: {name: x}", "spec.owner must be a string"),
        ("kind: Component\nmetadata: {name: x}\nspec: {owner: a, system: 3}", "spec.system must be a string"),
        ("kind: Component\nmetadata: x\nspec: {owner: a}", "metadata must be a mapping"),
        ("kind: Group\nmetadata: {name: g, annotations: {pagerduty.com/integration-key: 5}}", "must be a non-empty"),
        ("kind: Group\nmetadata: {name: g}\nspec: {children: a}", "spec.children must be a list"),
        ("- a list", "must be a mapping"),
        ("metadata: {name: x}", "kind is missing"),
    ],
)
def test_invalid_documents_are_reported_with_number_and_skipped(doc: str, message: str) -> None:
    text = "kind: Group\nmetadata: {name: first}\n---\n" + doc + "\n---\nkind: Group\nmetadata: {name: last}\n"
    cat = parse_catalog(text, "teams.yaml")
    assert [g.name for g in cat.groups] == ["first", "last"]
    (problem,) = cat.problems
    assert (problem.file, problem.document) == ("teams.yaml", 2)
    assert message in problem.message
    assert str(problem).startswith("teams.yaml: document 2: ")


def test_duplicate_in_one_file_is_reported() -> None:
    text = "kind: Group\nmetadata: {name: a}\n---\nkind: Group\nmetadata: {name: A}\n"
    cat = parse_catalog(text, "f.yaml")
    assert len(cat.groups) == 1
    assert "already defined in document 1" in cat.problems[0].message


def test_invalid_yaml_names_file_document_and_line() -> None:
    text = "kind: Group\nmetadata: {name: a}\n---\nkind: Group\nmetadata: {name: [unclosed\n"
    with pytest.raises(CatalogSyntaxError, match=r"f\.yaml: document 2: invalid YAML at line \d+"):
        parse_catalog(text, "f.yaml")
