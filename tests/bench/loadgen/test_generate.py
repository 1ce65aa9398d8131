"""Generated traces are valid OTLP, follow the topology and carry the root-cause walk's ground truth."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bench.loadgen import Generator, load_topology, parse_fault
from bench.loadgen.faults import Fault, FaultPlan, Scenario, load_plan
from bench.loadgen.topology import Topology
from bench.loadgen.truth import Truth
from tests.bench.loadgen.otlp_check import S, in_error, link, parse, walk

SHOP = load_topology()
FIXED_CLOCK = 1_700_000_000_000_000_000


def traces(gen: Generator, n: int) -> list[tuple[list[S], Truth]]:
    out = []
    for trace, truth in gen.traces(n):
        by_trace = parse(trace.to_request())
        assert list(by_trace) == [trace.trace_id]
        spans = by_trace[trace.trace_id]
        assert len(spans) == trace.spans == truth.spans
        out.append((spans, truth))
    return out


def check_structure(spans: list[S]) -> S:
    ids = [s.span.span_id for s in spans]
    assert len(set(ids)) == len(ids), "span ids repeat"
    for s in spans:
        assert len(s.span.trace_id) == 16 and s.span.trace_id != bytes(16)
        assert len(s.span.span_id) == 8 and s.span.span_id != bytes(8)
        assert len(s.span.parent_span_id) in (0, 8)
        assert s.span.start_time_unix_nano <= s.span.end_time_unix_nano
        assert s.span.kind != Span.SPAN_KIND_UNSPECIFIED
    roots = link(spans)
    assert len(roots) == 1, "exactly one root per trace, every parent present"
    assert not roots[0].span.parent_span_id
    for s in spans:
        for c in s.children:
            if c.span.kind == Span.SPAN_KIND_CONSUMER and s.span.kind == Span.SPAN_KIND_PRODUCER:
                assert c.span.start_time_unix_nano >= s.span.end_time_unix_nano  # delivered after the send
                continue
            assert s.span.start_time_unix_nano <= c.span.start_time_unix_nano, (s.span.name, c.span.name)
            assert c.span.end_time_unix_nano <= s.span.end_time_unix_nano, (s.span.name, c.span.name)
    return roots[0]


def check_topology(spans: list[S], topo: Topology) -> None:
    """Every span belongs to a service's operation or is the caller's span of a declared call."""
    for s in spans:
        svc = topo.services[s.service]
        kind = s.span.kind
        a = s.attrs
        assert s.resource["service.namespace"] == topo.namespace
        assert s.resource["deployment.environment.name"] == topo.environment
        assert {"service.version", "host.name", "telemetry.sdk.name", "telemetry.sdk.language"} <= set(s.resource)
        if kind in (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_CONSUMER):
            assert s.span.name in svc.operations, (s.service, s.span.name)
            for c in s.children:  # the edge exists in the topology
                calls = svc.operations[s.span.name].calls
                if c.span.kind in (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_PRODUCER):
                    if c.children:
                        callee = c.children[0]
                        assert (callee.service, callee.span.name) in {(x.service, x.operation) for x in calls}
                    else:  # a database or external API
                        assert c.attrs["peer.service"] in {x.service for x in calls}
                else:
                    assert (c.service, c.span.name) in {(x.service, x.operation) for x in calls}
        elif kind == Span.SPAN_KIND_CLIENT:
            if s.children:
                server = s.children[0]
                assert server.span.kind == Span.SPAN_KIND_SERVER and server.service != s.service
                assert a["server.address"] == server.service
                assert "rpc.system" in a or "http.request.method" in a
            else:
                name = str(a["peer.service"])
                if name in topo.databases:
                    db = topo.databases[name]
                    assert a["db.system"] == db.system and "db.query.text" in a and "db.operation.name" in a
                    assert a["db.namespace"] == (db.namespace or name)
                else:
                    assert name in topo.external and a["server.address"] == topo.external[name].host
                    assert "http.request.method" in a and "url.full" in a
        elif kind == Span.SPAN_KIND_PRODUCER:
            assert a["messaging.operation.type"] == "publish"
            assert [c.span.kind for c in s.children] == [Span.SPAN_KIND_CONSUMER]


def test_healthy_traces_are_valid_and_follow_the_topology() -> None:
    gen = Generator(SHOP, seed=7)
    seen_names: set[tuple[str, str]] = set()
    for spans, truth in traces(gen, 300):
        root = check_structure(spans)
        check_topology(spans, SHOP)
        assert not truth.error and truth.root_causes == () and truth.faults == ()
        assert f"{root.service}/{root.span.name}" == truth.entrypoint
        assert root.span.kind == Span.SPAN_KIND_SERVER
        assert root.span.trace_id.hex() == truth.trace_id
        assert not any(in_error(s) for s in spans)
        seen_names.update((s.service, s.span.name) for s in spans)
    # every service of the shop shows up, with semantic-convention attributes
    assert {svc for svc, _ in seen_names} == set(SHOP.services)
    assert ("checkout", "INSERT orders") in seen_names
    assert ("payment", "POST /v1/charges") in seen_names


def test_semantic_conventions_on_the_checkout_path() -> None:
    spans, _ = next(t for t in traces(Generator(SHOP, seed=3), 50) if t[1].entrypoint == "frontend/POST /checkout")
    by_name = {(s.service, s.span.name, s.span.kind): s.attrs for s in spans}
    http_server = by_name[("frontend", "POST /checkout", Span.SPAN_KIND_SERVER)]
    assert http_server["http.request.method"] == "POST" and http_server["http.route"] == "/checkout"
    assert http_server["url.path"] == "/checkout" and http_server["http.response.status_code"] == 200
    assert http_server["server.port"] == 8080
    rpc = by_name[("payment", "oteldemo.PaymentService/Charge", Span.SPAN_KIND_SERVER)]
    assert (rpc["rpc.system"], rpc["rpc.service"], rpc["rpc.method"]) == ("grpc", "oteldemo.PaymentService", "Charge")
    db = by_name[("checkout", "INSERT orders", Span.SPAN_KIND_CLIENT)]
    assert db["db.system"] == "postgresql" and db["db.namespace"] == "orders" and db["peer.service"] == "orders-db"
    assert db["db.operation.name"] == "INSERT" and str(db["db.query.text"]).startswith("INSERT INTO orders")
    stripe = by_name[("payment", "POST /v1/charges", Span.SPAN_KIND_CLIENT)]
    assert stripe["server.address"] == "api.stripe.com" and stripe["peer.service"] == "stripe-api"
    consumer = by_name[("email", "process orders", Span.SPAN_KIND_CONSUMER)]
    assert consumer["messaging.system"] == "kafka" and consumer["messaging.destination.name"] == "orders"


def truth_matches_walk(spans: list[S], truth: Truth) -> list[str]:
    roots = link(spans)
    found = walk(roots)
    assert truth.error == in_error(roots[0])
    assert [rc.service for rc in truth.root_causes] == [f[0] for f in found]
    assert [rc.span_id for rc in truth.root_causes] == [f[1].span.span_id.hex() for f in found]
    assert [rc.depth for rc in truth.root_causes] == [f[2] for f in found]
    return [f[0] for f in found]


@pytest.mark.parametrize(("spec", "expected"), [
    ("error:payment:1", "payment"),
    ("error:cart/oteldemo.CartService/EmptyCart:1", "cart"),
    ("db:orders-db:1", "orders-db"),
    ("db:stripe-api:1", "stripe-api"),
    ("error:payment/validate_card:1", "payment"),
    ("error:shipping:1:attribute", "shipping"),
])
def test_single_fault_cascades_and_truth_is_the_faulting_service(spec: str, expected: str) -> None:
    checkout_traces = 0
    for spans, truth in traces(Generator(SHOP, [parse_fault(spec)], seed=11), 120):
        check_structure(spans)
        services = truth_matches_walk(spans, truth)
        if truth.faults:
            checkout_traces += 1
            assert truth.error, "the cascade reaches the entrypoint"
            assert set(services) == {expected} and truth.primary == expected
            root = link(spans)[0]
            assert in_error(root)
            origin = [s for s in spans if any(e.name == "exception" for e in s.span.events)]
            assert origin and all("error.type" in s.attrs for s in origin)
        else:
            assert not truth.error and truth.primary is None
    assert checkout_traces > 10


def test_database_down_blames_peer_service_else_server_address() -> None:
    no_peer = dict(SHOP.databases)
    no_peer["orders-db"] = replace(no_peer["orders-db"], peer_service="")
    topo = replace(SHOP, databases=no_peer)
    spans_truths = traces(Generator(topo, [parse_fault("db:orders-db:1")], seed=5), 60)
    blamed = {truth.primary for _, truth in spans_truths if truth.error}
    assert blamed == {"orders-db.shop.svc.cluster.local"}
    for spans, truth in spans_truths:
        truth_matches_walk(spans, truth)


def test_nocascade_leaves_the_root_ok_and_noise_is_not_an_error() -> None:
    gen = Generator(SHOP, [parse_fault("error:payment:1:nocascade"), parse_fault("noise:0.3")], seed=9)
    noisy = 0
    for spans, truth in traces(gen, 80):
        truth_matches_walk(spans, truth)
        assert not truth.error
        for s in spans:
            if s.attrs.get("error") is True and s.span.status.code == Status.STATUS_CODE_OK:
                noisy += 1
                assert not in_error(s)
        payment = [s for s in spans if s.service == "payment" and s.span.kind == Span.SPAN_KIND_SERVER]
        assert all(in_error(s) for s in payment)
    assert noisy > 20


def test_two_independent_faults_both_blamed_primary_ended_first() -> None:
    gen = Generator(SHOP, [parse_fault("error:cart/oteldemo.CartService/GetCart:1"),
                           parse_fault("error:shipping/GET /quote:1")], seed=21)
    both = 0
    for spans, truth in traces(gen, 100):
        services = truth_matches_walk(spans, truth)
        if truth.entrypoint == "frontend/POST /checkout":
            both += 1
            assert sorted(services) == ["cart", "shipping"]
            assert len(truth.faults) == 2
            first = min(truth.root_causes, key=lambda rc: (rc.end_time_unix_nano, -rc.depth, rc.span_id))
            assert truth.primary == first.service
    assert both > 10


def test_scenarios_pick_by_weight_and_latency_fault_adds_time() -> None:
    plan = FaultPlan(scenarios=(
        Scenario("healthy", 1.0, ()),
        Scenario("slow-stripe", 1.0, (Fault("latency", service="stripe-api", add_ms=500),)),
        Scenario("payment-down", 1.0, (Fault("error", service="payment", rate=1.0),)),
    ))
    got: dict[str, int] = {}
    for spans, truth in traces(Generator(SHOP, plan, seed=4), 300):
        got[truth.scenario] = got.get(truth.scenario, 0) + 1
        truth_matches_walk(spans, truth)
        if truth.faults == ("latency:stripe-api:500:1",):
            stripe = next(s for s in spans if s.span.name == "POST /v1/charges")
            assert stripe.span.end_time_unix_nano - stripe.span.start_time_unix_nano >= 500_000_000
        if truth.scenario == "payment-down" and truth.faults:
            assert truth.primary == "payment"
    assert set(got) == {"healthy", "slow-stripe", "payment-down"}
    assert all(60 < n < 140 for n in got.values())


def test_same_seed_same_traces() -> None:
    def run(seed: int) -> list[bytes]:
        gen = Generator(SHOP, [parse_fault("error:payment:0.3")], seed=seed, clock=lambda: FIXED_CLOCK)
        return [b.payload for b in gen.batches(200, 50)]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_batches_hold_whole_traces_and_about_batch_spans() -> None:
    gen = Generator(SHOP, seed=1)
    total_traces = 0
    for batch in gen.batches(100, 200):
        parsed = parse(batch.payload)
        assert sum(len(v) for v in parsed.values()) == batch.spans
        assert {bytes.fromhex(t.trace_id) for t in batch.truths} == set(parsed)
        assert batch.spans <= 100 or batch.traces == 1
        total_traces += batch.traces
    assert total_traces == 200


def test_generator_is_fast_enough_for_the_benchmark() -> None:
    gen = Generator(SHOP, [parse_fault("error:payment:0.05")], seed=1)
    spans = 0
    start = time.process_time()
    for batch in gen.batches(500, 3000):
        spans += batch.spans
    rate = spans / (time.process_time() - start)
    assert rate > 50_000, f"{rate:.0f} spans/s"  # ~200k on the reference machine; lenient under load


def test_shipped_accuracy_scenarios_truth() -> None:
    expected = {"single": {"payment"}, "cascade": {"orders-db"}, "independent": {"cart", "shipping"},
                "caller-also-fails": {"stripe-api"}, "noisy": {"inventory"}}
    seen: set[str] = set()
    for spans, truth in traces(Generator(SHOP, load_plan("accuracy"), seed=8), 400):
        check_structure(spans)
        services = truth_matches_walk(spans, truth)
        if truth.error:
            seen.add(truth.scenario)
            if truth.entrypoint == "frontend/POST /checkout":
                assert set(services) == expected[truth.scenario], truth.scenario
            else:  # GET /cart and GET /product/{id} reach only part of the shop
                assert set(services) <= expected[truth.scenario], truth.scenario
    assert seen == set(expected)


@pytest.mark.parametrize(
    ("spec", "service", "kinds"),
    [
        ("latency:inventory:800:1", "inventory", {Span.SPAN_KIND_SERVER}),
        ("latency:orders-db:300:1", "orders-db", {Span.SPAN_KIND_CLIENT}),  # the callers' spans to the database
        ("latency:checkout/oteldemo.CheckoutService/PlaceOrder:500:1", "checkout", {Span.SPAN_KIND_SERVER}),
    ],
)
def test_latency_truth_names_the_lengthened_spans(spec: str, service: str, kinds: set[int]) -> None:
    fault = parse_fault(spec)
    slowed = 0
    for spans, truth in traces(Generator(SHOP, [fault], seed=3), 150):
        root = check_structure(spans)
        assert truth.duration_ms == (root.span.end_time_unix_nano - root.span.start_time_unix_nano) / 1e6
        by_id = {s.span.span_id.hex(): s for s in spans}
        if fault.label not in truth.faults:
            assert truth.latency_causes == () and truth.latency_primary is None
            continue
        slowed += 1
        assert truth.latency_primary == service and not truth.error
        for rc in truth.latency_causes:
            s = by_id[rc.span_id]
            assert (rc.service, rc.span_name, s.span.kind in kinds) == (service, s.span.name, True)
            assert rc.end_time_unix_nano == s.span.end_time_unix_nano
            assert rc.own_time_ms >= fault.add_ms
        own = [rc.own_time_ms for rc in truth.latency_causes]
        assert own == sorted(own, reverse=True)  # the one to blame first
        assert truth.duration_ms > fault.add_ms
        # Every lengthened span is listed: the faulted operations, or each call to the database.
        if service in SHOP.databases:
            lengthened = [s for s in spans if s.attrs.get("peer.service") == service]
        else:
            lengthened = [s for s in spans if s.service == service and s.span.kind in kinds
                          and (not fault.operation or s.span.name == fault.operation)]
        assert {s.span.span_id.hex() for s in lengthened} == {rc.span_id for rc in truth.latency_causes}
    assert slowed > 20


def test_latency_truth_leaves_out_work_after_the_response() -> None:
    # email consumes the order message after checkout has answered: not part of the request's time.
    gen = Generator(SHOP, [parse_fault("latency:email:500:1")], seed=3)
    lengthened = 0
    for spans, truth in traces(gen, 100):
        check_structure(spans)
        assert truth.latency_causes == () and truth.duration_ms < 500
        lengthened += any(s.service == "email" and s.span.end_time_unix_nano - s.span.start_time_unix_nano
                          >= 500_000_000 for s in spans)
    assert lengthened > 10


def test_latency_truth_round_trips_through_json() -> None:
    gen = Generator(SHOP, [parse_fault("latency:orders-db:300:1")], seed=3)
    for _, truth in gen.traces(30):
        assert Truth.from_dict(json.loads(truth.to_json())) == truth
        if truth.latency_causes:
            assert json.loads(truth.to_json())["latency_primary"] == "orders-db"
