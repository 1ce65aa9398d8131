"""Ownership: precedence, PagerDuty keys, the shipped catalog, broken files, reload from disk."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from collector import Host, Telemetry
from collector.config import Duration, decode
from pipelines.ownership import CatalogError, Ownership, OwnershipConfig, Team

ROOT = Path(__file__).resolve().parents[3]
LOG = logging.getLogger("test.ownership")

TEAMS = """
kind: Group
metadata:
  name: payments
  annotations: {pagerduty.com/integration-key: payments-key}
---
kind: Group
metadata: {name: data, annotations: {pagerduty.com/integration-key: data-key}}
---
kind: Group
metadata: {name: web}
"""

SERVICES = """
kind: Component
metadata: {name: payment}
spec: {owner: group:default/payments}
---
kind: Component
metadata:
  name: stripe-api
  annotations: {pagerduty.com/integration-key: stripe-key}
spec: {owner: group:payments}
---
kind: Component
metadata: {name: orders-db}
spec: {owner: data}
"""


def make(*patterns: str, telemetry: Telemetry | None = None, **cfg: object) -> Ownership:
    config = decode(OwnershipConfig, {"catalog": list(patterns), **cfg})
    return Ownership(config, telemetry or Telemetry(), LOG)


def write(path: Path, text: str) -> None:
    """Write so that a reload sees a change even within one mtime tick (size or inode changes)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    write(tmp_path / "teams.yaml", TEAMS)
    write(tmp_path / "services.yaml", SERVICES)
    return tmp_path


def test_config_defaults() -> None:
    cfg = decode(OwnershipConfig, {})
    assert cfg == OwnershipConfig((), "", "sre", Duration(10.0))


def test_precedence(catalog: Path) -> None:
    own = make(str(catalog / "*.yaml"), resource_attribute="service.owner", default_team="group:SRE")
    own.load()
    assert own.owner_of("payment") == Team("payments", "payments-key")
    assert own.owner_of("Payment").name == "payments"  # names compare case-insensitively
    assert own.owner_of("payment", {"service.owner": "group:default/web"}) == Team("web", None)
    assert own.owner_of("payment", {"service.owner": ""}).name == "payments"
    assert own.owner_of("payment", {"other": "web"}).name == "payments"
    assert own.owner_of("unknown") == Team("sre", None)
    assert own.owner_of("unknown", {"service.owner": "data"}) == Team("data", "data-key")


def test_resource_attribute_off_by_default(catalog: Path) -> None:
    own = make(str(catalog / "*.yaml"))
    own.load()
    assert own.owner_of("payment", {"service.owner": "web"}).name == "payments"


def test_pagerduty_keys_component_then_group(catalog: Path) -> None:
    own = make(str(catalog / "*.yaml"))
    own.load()
    assert own.owner_of("stripe-api") == Team("payments", "stripe-key")  # the Component's key wins
    assert own.pagerduty_key_for("stripe-api", "group:payments") == "stripe-key"
    assert own.pagerduty_key_for("payment", "payments") == "payments-key"  # the Group's
    assert own.pagerduty_key_for("stripe-api", "web") is None  # not the Component's owner, web has no key
    assert own.pagerduty_key_for("orders-db", "data") == "data-key"
    assert own.team("group:default/payments") == Team("payments", "payments-key")
    assert own.team("nobody") == Team("nobody", None)
    assert dict(own.components()) == {"payment": "payments", "stripe-api": "payments", "orders-db": "data"}
    assert set(own.teams()) == {"payments", "data", "web"}


def test_shipped_catalog() -> None:
    telemetry = Telemetry()
    own = make(str(ROOT / "configs" / "catalog" / "*.yaml"), telemetry=telemetry)
    own.load()
    assert dict(own.components()) == {
        "frontend": "web", "checkout": "checkout", "cart": "checkout", "payment": "payments",
        "inventory": "inventory", "shipping": "logistics", "email": "messaging", "orders-db": "data",
        "stripe-api": "payments",
    }
    assert set(own.teams()) == {"web", "checkout", "payments", "inventory", "logistics", "messaging", "data", "sre"}
    assert own.owner_of("stripe-api").pagerduty_key != own.team("payments").pagerduty_key
    assert own.owner_of("frontend").pagerduty_key is None
    assert telemetry.registry.get_sample_value("tracetriage_ownership_catalog_components") == 9
    assert telemetry.registry.get_sample_value("tracetriage_ownership_catalog_errors_total",
                                               {"file": str(ROOT / "configs/catalog/shop.yaml")}) is None


def test_first_file_wins_for_duplicates(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "kind: Component\nmetadata: {name: x}\nspec: {owner: first}\n")
    write(tmp_path / "b.yaml", "kind: Component\nmetadata: {name: x}\nspec: {owner: second}\n")
    own = make(str(tmp_path / "b.yaml"), str(tmp_path / "*.yaml"))
    own.load()
    assert own.owner_of("x").name == "second"


def test_broken_document_reported_rest_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry()
    path = tmp_path / "c.yaml"
    write(path, SERVICES + "---\nkind: Component\nmetadata: {name: bad}\nspec: {owner: 5}\n")
    own = make(str(path), telemetry=telemetry)
    with caplog.at_level(logging.WARNING, LOG.name):
        own.load()
    assert "orders-db" in own.components() and "bad" not in own.components()
    assert f"{path}: document 4: Component 'bad': spec.owner must be a string" in caplog.text
    assert telemetry.registry.get_sample_value("tracetriage_ownership_catalog_errors_total", {"file": str(path)}) == 1


def test_startup_without_any_loadable_file_fails(tmp_path: Path) -> None:
    write(tmp_path / "broken.yaml", "kind: [\n")
    with pytest.raises(CatalogError, match=r"no catalog file could be loaded.*broken\.yaml.*invalid YAML"):
        make(str(tmp_path / "*.yaml")).load()
    with pytest.raises(CatalogError, match="no file matches"):
        make(str(tmp_path / "*.yml")).load()
    with pytest.raises(CatalogError, match=r"missing\.yaml not found"):
        make(str(tmp_path / "missing.yaml")).load()


def test_startup_with_one_broken_file_continues(catalog: Path, caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry()
    write(catalog / "zz.yaml", "kind: Group\nmetadata: {name: [x\n")
    own = make(str(catalog / "*.yaml"), telemetry=telemetry)
    with caplog.at_level(logging.ERROR, LOG.name):
        own.load()
    assert own.owner_of("payment").name == "payments"
    assert "zz.yaml not loaded" in caplog.text and "invalid YAML at line" in caplog.text
    file_label = {"file": str(catalog / "zz.yaml")}
    assert telemetry.registry.get_sample_value("tracetriage_ownership_catalog_errors_total", file_label) == 1
    own.refresh()  # unchanged: not reported again
    assert telemetry.registry.get_sample_value("tracetriage_ownership_catalog_errors_total", file_label) == 1


def test_no_catalog_is_fine() -> None:
    own = make(default_team="ops")
    own.load()
    assert own.owner_of("anything") == Team("ops", None)


async def test_reload_picks_up_edit_broken_file_new_file_and_deletion(catalog: Path) -> None:
    telemetry = Telemetry()
    own = make(str(catalog / "*.yaml"), reload_interval="50ms", telemetry=telemetry)
    await own.start(Host())  # loads
    try:
        assert own.owner_of("payment").name == "payments"
        # An edit on disk (in place, as an editor saves) changes the owner without restart.
        (catalog / "services.yaml").write_text(SERVICES.replace("group:default/payments", "group:web"))
        await eventually(lambda: own.owner_of("payment").name == "web")
        # A broken edit keeps the last good content of that file and is counted.
        write(catalog / "services.yaml", "kind: Component\nmetadata: {name: [\n")
        label = {"file": str(catalog / "services.yaml")}
        await eventually(lambda: telemetry.registry.get_sample_value(
            "tracetriage_ownership_catalog_errors_total", label) == 1)
        assert own.owner_of("payment").name == "web"
        assert own.owner_of("stripe-api").pagerduty_key == "stripe-key"
        # A new file matching the glob is picked up.
        write(catalog / "more.yaml", "kind: Component\nmetadata: {name: email}\nspec: {owner: group:messaging}\n")
        await eventually(lambda: own.owner_of("email").name == "messaging")
        assert telemetry.registry.get_sample_value("tracetriage_ownership_catalog_components") == 4
        # A deleted file takes its entries with it.
        (catalog / "more.yaml").unlink()
        await eventually(lambda: own.owner_of("email").name == "sre")
        assert telemetry.registry.get_sample_value("tracetriage_ownership_catalog_components") == 3
    finally:
        await own.shutdown()
        await own.shutdown()


async def test_reload_off_and_shutdown_before_start(catalog: Path) -> None:
    own = make(str(catalog / "*.yaml"), reload_interval="0s")
    await own.shutdown()
    own = make(str(catalog / "*.yaml"), reload_interval="0s")
    own.load()
    await own.start(Host())
    write(catalog / "services.yaml", SERVICES.replace("group:default/payments", "web"))
    await asyncio.sleep(0.1)
    assert own.owner_of("payment").name == "payments"
    assert own.refresh() is True and own.owner_of("payment").name == "web"
    await own.shutdown()
