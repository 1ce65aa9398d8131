"""Topology and fault files: the shipped shop, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.loadgen import Generator, load_topology, parse_fault, parse_topology
from bench.loadgen.faults import check_plan, load_plan, parse_plan
from collector.config.schema import ConfigError

CATALOG_COMPONENTS = {"frontend", "checkout", "cart", "payment", "inventory", "shipping", "email", "orders-db",
                      "stripe-api"}


def minimal() -> dict[str, Any]:
    return {
        "services": {
            "web": {"operations": {"GET /": {"calls": [{"service": "api", "operation": "GET /items"}]}}},
            "api": {"operations": {"GET /items": {"calls": [{"service": "db", "operation": "q"}]}}},
        },
        "databases": {"db": {"system": "postgresql", "operations": {"q": {"query": "SELECT 1"}}}},
        "entrypoints": [{"service": "web", "operation": "GET /"}],
    }


def errors(doc: Any) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_topology(doc, "t.yaml")
    return [f"{i.path}: {i.message}" for i in e.value.issues]


def test_shipped_shop_has_the_catalog_names() -> None:
    shop = load_topology()
    assert set(shop.services) | set(shop.databases) | set(shop.external) == CATALOG_COMPONENTS
    assert shop.databases["orders-db"].system == "postgresql"
    assert ("frontend", "POST /checkout") in {(e.service, e.operation) for e in shop.entrypoints}
    assert "place_order" in shop.services["frontend"].operations


def test_minimal_topology_generates() -> None:
    topo = parse_topology(minimal())
    trace, truth = next(Generator(topo, seed=1).traces(1))
    assert trace.spans == 4 and truth.entrypoint == "web/GET /"  # web SERVER, CLIENT, api SERVER, db CLIENT


def test_unknown_call_target_is_named_by_key_path() -> None:
    doc = minimal()
    doc["services"]["api"]["operations"]["GET /items"]["calls"][0]["service"] = "dbb"
    (msg,) = errors(doc)
    assert msg.startswith("services.api.operations.GET /items.calls[0].service: unknown service, database")
    assert "'dbb'" in msg and "db" in msg


def test_unknown_keys_bad_latency_and_bad_entrypoint() -> None:
    doc = minimal()
    doc["services"]["web"]["operations"]["GET /"]["latency"] = {"distribution": "lognormal", "p50_ms": 5}
    doc["services"]["api"]["colour"] = "blue"
    doc["entrypoints"][0]["operation"] = "GET /nope"
    msgs = errors(doc)
    assert any(m.startswith("services.web.operations.GET /.latency.p99_ms: is required") for m in msgs)
    assert any(m.startswith("services.api.colour: unknown key") for m in msgs)
    assert any(m.startswith("entrypoints[0].operation: unknown operation 'GET /nope'") for m in msgs)


def test_cycles_are_rejected() -> None:
    doc = minimal()
    doc["services"]["api"]["operations"]["GET /items"]["calls"].append({"service": "web", "operation": "GET /"})
    (msg,) = errors(doc)
    assert "call cycle: web/GET / -> api/GET /items -> web/GET /" in msg


def test_span_count_is_bounded() -> None:
    doc = minimal()
    doc["services"]["web"]["operations"]["GET /"]["calls"][0]["count"] = 100
    doc["services"]["api"]["operations"]["GET /items"]["calls"][0]["count"] = 100
    (msg,) = errors(doc)
    assert msg.startswith("entrypoints[0]: web/GET / can make up to") and "lower counts" in msg


def test_call_into_another_service_must_hit_a_server_operation() -> None:
    doc = minimal()
    doc["services"]["api"]["operations"]["helper"] = {"kind": "internal"}
    doc["services"]["web"]["operations"]["GET /"]["calls"][0]["operation"] = "helper"
    (msg,) = errors(doc)
    assert "must target a server or consumer operation" in msg


def test_fault_syntax() -> None:
    f = parse_fault("error:payment/oteldemo.PaymentService/Charge:0.25:nocascade")
    assert (f.type, f.service, f.operation, f.rate, f.cascade) == (
        "error", "payment", "oteldemo.PaymentService/Charge", 0.25, False)
    assert parse_fault("db:orders-db:0.05").database == "orders-db"
    lat = parse_fault("latency:stripe-api:300")
    assert (lat.add_ms, lat.rate) == (300, 1.0)
    assert parse_fault("noise:0.1").service == ""
    assert parse_fault(parse_fault("error:cart:0.5:attribute").label).via == "attribute"
    for bad, words in [("error:payment", "expected error:"), ("error:payment:2", "between 0 and 1"),
                       ("boom:x:1", "unknown fault type"), ("latency:x:-5", "ADD_MS must be > 0"),
                       ("error:payment:0.1:loud", "unknown option")]:
        with pytest.raises(ValueError, match=words):
            parse_fault(bad)


def test_fault_file_is_checked_against_the_topology(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump({"scenarios": [
        {"name": "single", "faults": [{"type": "error", "service": "payment", "rate": 0.5}]},
        {"name": "bad", "faults": [{"type": "database_down", "database": "users-db"},
                                   {"type": "error", "service": "orders-db"}]},
    ]}))
    plan = load_plan(path)
    with pytest.raises(ConfigError) as e:
        check_plan(plan, load_topology(), str(path))
    msgs = [str(i) for i in e.value.issues]
    assert any("scenarios[1].faults[0].database: unknown database or external API 'users-db'" in m for m in msgs)
    assert any("scenarios[1].faults[1].service" in m and "database_down" in m for m in msgs)
    with pytest.raises(ConfigError, match=r"faults\[0\].add_ms: must be > 0 for a latency fault"):
        parse_plan([{"type": "latency", "service": "cart"}])
