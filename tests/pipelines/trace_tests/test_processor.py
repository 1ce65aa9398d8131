"""The ``trace_tests`` stage on buffered traces: exact pass/fail counts over 10,000 traces with known outcomes,
tracetest.failed on the root span, not_applicable trigger specs, alerting thresholds, reloads and refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector import ComponentID, Host, Kind, Settings
from collector.config import ConfigError, decode
from collector.model import Trace, make_trace
from collector.telemetry import Telemetry
from pipelines.trace_tests import FAILED_ATTRIBUTE, TEST_FAILURES, Config, TestFailure, TraceTestsProcessor
from pipelines.trace_tests.processor import MAX_NAME_SEARCHES
from tests.pipelines.trace_tests.shop_trace import buffered, span

CHECKOUT = """
type: Test
spec:
  name: checkout
  owner: payments
  trigger: {type: http, httpRequest: {method: POST, url: "http://shop/checkout"}}
  specs:
    - selector: span[name="POST /checkout"]
      name: answers 2xx
      assertions: [attr:http.response.status_code < 300]
    - selector: span[name="POST /checkout"] span[tracetest.span.type="database"]
      name: db fast
      assertions: [attr:tracetest.span.duration < 50ms]
    - selector: span[rpc.service="payments.Charge"]
      name: payment ok
      assertions: ['attr:tracetest.span.status_code != "error"']
    - selector: span[name="Tracetest trigger"]
      name: trigger answered
      assertions: [attr:tracetest.response.status = 200]
"""
SEARCH = """
type: Test
spec:
  name: search
  specs:
    - selector: span[name="GET /search" service.name="search-api"]
      name: search root
      assertions: [attr:tracetest.selected_spans.count = 1]
    - selector: span[name="GET /search"] span[db.system="elasticsearch"]
      name: one query
      assertions: [attr:tracetest.selected_spans.count = 1]
    - selector: span[name="GET /search"] span[db.system="elasticsearch"]
      name: queries elasticsearch
      assertions: [attr:tracetest.selected_spans.count >= 1]
"""
NEVER = """
type: Test
spec:
  name: refunds
  specs:
    - selector: span[name="POST /refund"]
      assertions: [attr:http.response.status_code = 200]
"""


def tid(i: int) -> bytes:
    return (i + 1).to_bytes(16, "big")


def checkout(i: int, *, status: int, db_ms: float, pay_error: bool) -> Trace:
    t = tid(i)
    return buffered([
        (span(1, 0, "POST /checkout", 0, 100, trace_id=t, **{"http.response.status_code": status}), "frontend"),
        (span(2, 1, "SELECT orders", 1, db_ms, kind=Span.SPAN_KIND_CLIENT, trace_id=t,
              **{"db.system": "postgresql"}), "frontend"),
        (span(3, 1, "Charge/Pay", 60, 5, kind=Span.SPAN_KIND_CLIENT, trace_id=t, error=pay_error,
              **{"rpc.service": "payments.Charge"}), "frontend"),
    ])


def search(i: int, *, queries: int) -> Trace:
    t = tid(i)
    spans = [(span(1, 0, "GET /search", 0, 30, trace_id=t), "search-api")]
    spans += [(span(10 + q, 1, "query", 1 + q, 2, kind=Span.SPAN_KIND_CLIENT, trace_id=t,
                    **{"db.system": "elasticsearch"}), "search-api") for q in range(queries)]
    return buffered(spans)


def other(i: int) -> Trace:
    return buffered([(span(1, 0, "GET /health", 0, 1, trace_id=tid(i)), "frontend")])


def write_defs(directory: Path, *texts: str) -> Path:
    directory.mkdir(exist_ok=True)
    for n, text in enumerate(texts):
        (directory / f"t{n}.yaml").write_text(text)
    return directory


def make(directory: Path, telemetry: Telemetry, **over: object) -> TraceTestsProcessor:
    cfg = decode(Config, {"definitions": str(directory), "reload_interval": "0s", **over}, "processors.trace_tests")
    return TraceTestsProcessor(Settings(ComponentID("trace_tests"), Kind.PROCESSOR, telemetry,
                                        logging.getLogger("trace_tests-test")), cfg)


def root_attr(trace: Trace) -> str | None:
    for _, s in trace.iter_spans():
        if not s.parent_span_id:
            return next((kv.value.string_value for kv in s.attributes if kv.key == FAILED_ATTRIBUTE), None)
    raise AssertionError("no root")


def test_counts_exactly_over_10000_traces(tmp_path: Path) -> None:
    telemetry = Telemetry()
    proc = make(write_defs(tmp_path / "defs", CHECKOUT, SEARCH, NEVER), telemetry,
                alerting={"min_failures": 1000000})
    specs = [("checkout", "answers 2xx"), ("checkout", "db fast"), ("checkout", "payment ok"),
             ("search", "search root"), ("search", "one query"), ("search", "queries elasticsearch")]
    expected = {(t, s, r): 0 for t, s in specs for r in ("pass", "fail")}
    expected[("checkout", "trigger answered", "not_applicable")] = 0
    failing_traces: dict[bytes, str] = {}
    traces: list[Trace] = []
    for i in range(10_000):
        if i % 10 == 9:
            traces.append(other(i))
            continue
        if i % 4 == 3:
            queries = 0 if i % 19 == 0 else 2 if i % 17 == 3 else 1
            traces.append(search(i, queries=queries))
            one, es = queries == 1, queries >= 1
            expected[("search", "search root", "pass")] += 1
            expected[("search", "one query", "pass" if one else "fail")] += 1
            expected[("search", "queries elasticsearch", "pass" if es else "fail")] += 1
            failed = [n for n, ok in (("one query", one), ("queries elasticsearch", es)) if not ok]
            if failed:
                failing_traces[tid(i)] = "; ".join(f"search: {n}" for n in failed)
            continue
        status, db_ms, pay_error = (500 if i % 13 == 0 else 200), (80.0 if i % 7 == 0 else 10.0), i % 11 == 0
        traces.append(checkout(i, status=status, db_ms=db_ms, pay_error=pay_error))
        oks = (("answers 2xx", status < 300), ("db fast", db_ms < 50), ("payment ok", not pay_error))
        for name, ok in oks:
            expected[("checkout", name, "pass" if ok else "fail")] += 1
        expected[("checkout", "trigger answered", "not_applicable")] += 1
        failed = [n for n, ok in oks if not ok]
        if failed:
            failing_traces[tid(i)] = "; ".join(f"checkout: {n}" for n in failed)
    for start in range(0, len(traces), 500):
        assert proc.process_traces(traces[start:start + 500]) == traces[start:start + 500]

    get = telemetry.registry.get_sample_value
    for (test, spec, result), n in expected.items():
        got = get("tracetriage_trace_tests_total", {"test": test, "spec": spec, "result": result})
        assert (got or 0) == n, (test, spec, result)
    assert get("tracetriage_trace_tests_total", {"test": "refunds", "spec": 'span[name="POST /refund"]',
                                                 "result": "pass"}) is None
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "tested"}) == 9000
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "untested"}) == 1000
    assert sum(v for k, v in expected.items() if k[2] == "fail") > 1000  # the table is not trivial
    # tracetest.failed: exactly on the failing traces' root spans, naming the failed specs
    for t in traces:
        assert root_attr(t) == failing_traces.get(t.trace_id)
    assert all(t.note(TEST_FAILURES) is None for t in traces)  # min_failures not reached: nothing pages


def test_failures_page_only_past_the_thresholds(tmp_path: Path) -> None:
    telemetry = Telemetry()
    proc = make(write_defs(tmp_path / "defs", CHECKOUT), telemetry,
                alerting={"window": "5m", "min_failures": 3, "failure_rate": 0.5})
    good = [checkout(i, status=200, db_ms=10, pay_error=False) for i in range(4)]
    proc.process_traces(good)
    bad = [checkout(100 + i, status=200, db_ms=10, pay_error=True) for i in range(5)]
    notes: list[list[TestFailure] | None] = []
    for t in bad:
        proc.process_traces([t])
        notes.append(t.note(TEST_FAILURES))
    # 3rd failure: 3 of 7 < 50 %; 4th: 4 of 8 = 50 % -> pages; 5th too
    assert [n is not None for n in notes] == [False, False, False, True, True]
    last = notes[-1]
    assert last is not None and len(last) == 1
    f = last[0]
    assert (f.test, f.spec, f.team, f.service, f.failures, f.runs) == ("checkout", "payment ok", "payments", "frontend",
                                                                       5, 9)
    assert f.examples[:2] == (tid(104), tid(103))
    assert f.failed_assertions == ('attr:tracetest.span.status_code != "error"',)
    assert 'actual "error"' in f.actual
    ann = f.annotations("https://traces/{trace_id}")
    assert ann["trace_url"] == f"https://traces/{tid(104).hex()}"
    assert "failing on 5 of 9 traces" in ann["summary"]


def test_reload_keeps_running_set_on_a_bad_edit(tmp_path: Path) -> None:
    import asyncio

    defs = write_defs(tmp_path / "defs", CHECKOUT)
    telemetry = Telemetry()
    proc = make(defs, telemetry)

    async def go() -> tuple[bool, bool, bool]:
        (defs / "t1.yaml").write_text(SEARCH)
        first = await proc.reload()
        (defs / "t2.yaml").write_text(SEARCH.replace("selected_spans.count = 1", "x | json_path '$' = 1"))
        second = await proc.reload()
        third = await proc.reload()  # nothing changed since
        return first, second, third

    assert asyncio.run(go()) == (True, False, False)
    assert sorted(t.definition.name for t in proc.tests) == ["checkout", "search"]
    assert telemetry.registry.get_sample_value("tracetriage_trace_tests_reloads_total",
                                               {"processor": "trace_tests", "result": "error"}) == 1


def test_config_refuses_bad_definitions(tmp_path: Path) -> None:
    defs = write_defs(tmp_path / "defs", CHECKOUT, CHECKOUT.replace("name: checkout", "name: other").replace(
        "attr:http.response.status_code < 300", "attr:http.response.status_code exists"))
    with pytest.raises(ConfigError) as info:
        decode(Config, {"definitions": str(defs)}, "processors.trace_tests")
    text = str(info.value.issues[0])
    assert text.startswith("processors.trace_tests.definitions: ")
    assert f"{defs / 't1.yaml'}: spec.specs[0] ('answers 2xx').assertions[0]" in text
    with pytest.raises(ConfigError, match="no such file"):
        decode(Config, {"definitions": str(tmp_path / "none")}, "processors.trace_tests")
    dup = write_defs(tmp_path / "dup", CHECKOUT, CHECKOUT)
    with pytest.raises(ConfigError, match="already used by"):
        decode(Config, {"definitions": str(dup)}, "processors.trace_tests")


async def test_debug_route_only_with_debug(tmp_path: Path) -> None:
    defs = write_defs(tmp_path / "defs", CHECKOUT)
    proc = make(defs, Telemetry())
    host = Host()
    await proc.start(host)
    assert host.routes == {}
    await proc.shutdown()
    proc = make(defs, Telemetry())
    host = Host()
    host.debug = True
    await proc.start(host)
    assert list(host.routes) == ["/api/trace-tests/{trace_id}"]
    await proc.shutdown()


def test_live_definitions_need_no_trigger_env(tmp_path: Path) -> None:
    """The processor fires no trigger: an unset ${env:...} in spec.trigger does not refuse the file (test run
    would refuse it)."""
    text = CHECKOUT.replace('url: "http://shop/checkout"', 'url: "${env:TT_TEST_UNSET_URL}/checkout"')
    defs = write_defs(tmp_path / "defs", text)
    proc = make(defs, Telemetry())
    assert [t.definition.trigger for t in proc.tests] == [None]
    from pipelines.trace_tests.definition import DefinitionError, load_definition

    with pytest.raises(DefinitionError, match=r"TT_TEST_UNSET_URL\} is not set"):
        load_definition(defs / "t0.yaml", {})


def test_shipped_definitions_load() -> None:
    from tests.conftest import ROOT

    defs = ROOT / "configs" / "trace-tests"
    proc = make(defs, Telemetry())
    assert sorted(t.definition.name for t in proc.tests) == [
        "checkout places the order", "the cart loads", "the orders database answers"]


BY_NAME = """
type: Test
spec:
  name: {test}
  specs:
    - selector: span[name="{name}"]
      name: {spec}
      assertions: [{assertion}]
"""
EVERY = """
type: Test
spec:
  name: every
  specs:
    - selector: span[rpc.service="payments.Charge"]
      name: payment ok
      assertions: ['attr:tracetest.span.status_code != "error"']
"""
LONG_NAME = "GET /" + "l" * 200  # a two-byte length on the wire
WIDE_NAME = "GET /" + "b" * 60  # 65 bytes: its length byte is "A"
DECOY_NAME = "*AGET"  # on the wire 2a 05 2a 41 47 45 54: spans WIDE_NAME's tag when a parent id ends in 2a 05


def test_byte_search_tests_exactly_the_traces_a_test_applies_to(tmp_path: Path) -> None:
    """Which tests apply is found from the wire bytes: a name's bytes elsewhere than in a name (an attribute
    value, a parent id) cost a decode but test nothing; a name in a second origin, a long name, a name whose
    bytes start inside another hit, a trace a stage before changed, and a test that names no span are tested
    exactly as decoding every trace would."""
    defs = [BY_NAME.format(test="checkout", name="POST /checkout", spec="answers 2xx",
                           assertion="attr:http.response.status_code < 300"),
            BY_NAME.format(test="long", name=LONG_NAME, spec="fast", assertion="attr:tracetest.span.duration < 1s"),
            BY_NAME.format(test="wide", name=WIDE_NAME, spec="fast", assertion="attr:tracetest.span.duration < 1s"),
            BY_NAME.format(test="decoy", name=DECOY_NAME, spec="one",
                           assertion="attr:tracetest.selected_spans.count = 1"),
            EVERY]
    fillers = 3
    defs += [BY_NAME.format(test=f"orders-{i}", name=f"POST /orders/{i}", spec="one",
                            assertion="attr:tracetest.selected_spans.count = 1") for i in range(fillers)]
    telemetry = Telemetry()
    proc = make(write_defs(tmp_path / "defs", *defs), telemetry)
    assert len(proc.tests) - 1 > MAX_NAME_SEARCHES  # the names are looked for with one regular expression
    get = telemetry.registry.get_sample_value
    expected: dict[tuple[str, str, str], int] = {}

    def expect(test: str, spec: str, result: str) -> None:
        expected[(test, spec, result)] = expected.get((test, spec, result), 0) + 1

    traces: list[Trace] = []
    tested = 0
    for i in range(0, 600, 6):
        traces.append(checkout(i, status=500 if i % 12 else 200, db_ms=1, pay_error=False))
        expect("checkout", "answers 2xx", "fail" if i % 12 else "pass")
        expect("every", "payment ok", "pass")
        # "POST /checkout" as a span encodes it, in an attribute value: decoded, nothing applies
        traces.append(buffered([(span(1, 0, "GET /health", 0, 1, trace_id=tid(i + 1),
                                      note="\x2a\x0ePOST /checkout"), "frontend")]))
        # the name in the second origin
        traces.append(buffered([(span(1, 0, "GET /x", 0, 5, trace_id=tid(i + 2)), "front"),
                                (span(2, 1, f"POST /orders/{i % fillers}", 1, 2, trace_id=tid(i + 2)), "back")]))
        expect(f"orders-{i % fillers}", "one", "pass")
        traces.append(buffered([(span(1, 0, LONG_NAME, 0, 2000 if i % 18 == 0 else 5, trace_id=tid(i + 3)), "f")]))
        expect("long", "fast", "fail" if i % 18 == 0 else "pass")
        # WIDE_NAME's field starts inside DECOY_NAME's bytes (the parent id ends in 2a 05)
        wide = span(2, 0, WIDE_NAME, 0, 5, trace_id=tid(i + 4))
        wide.parent_span_id = b"\x01" * 6 + b"\x2a\x05"
        traces.append(buffered([(wide, "f")]))
        expect("wide", "fast", "pass")
        # a stage before decoded and changed the trace: what it changed is what is tested
        changed = other(i + 5)
        for _, s in changed.iter_spans():
            s.name = "POST /checkout"
            s.attributes.add(key="http.response.status_code").value.int_value = 503
        changed.mark_modified()
        traces.append(changed)
        expect("checkout", "answers 2xx", "fail")
        tested += 5
    proc.process_traces(traces)
    for (test, spec, result), n in expected.items():
        assert get("tracetriage_trace_tests_total", {"test": test, "spec": spec, "result": result}) == n, (test, spec)
    total = sum(v for m in telemetry.registry.collect() if m.name == "tracetriage_trace_tests"
                for s in m.samples if s.name == "tracetriage_trace_tests_total" for v in [s.value])
    assert total == sum(expected.values())  # nothing else ran (not the decoy test)
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "tested"}) == tested
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "untested"}) == 100
    assert get("tracetriage_trace_tests_every_trace", {"processor": "trace_tests"}) == 1


def test_byte_search_with_one_name(tmp_path: Path) -> None:
    """One name is looked for with ``in``: its bytes in an attribute value test nothing, a trace a stage before
    changed is tested as changed, a real one is tested."""
    assert MAX_NAME_SEARCHES >= 1
    defs = write_defs(tmp_path / "defs", BY_NAME.format(test="checkout", name="POST /checkout", spec="answers 2xx",
                                                        assertion="attr:http.response.status_code < 300"))
    telemetry = Telemetry()
    proc = make(defs, telemetry)
    decoy = buffered([(span(1, 0, "GET /health", 0, 1, trace_id=tid(1), note="\x2a\x0ePOST /checkout"), "f")])
    changed = other(2)
    for _, s in changed.iter_spans():
        s.name = "POST /checkout"
    changed.mark_modified()
    proc.process_traces([checkout(3, status=200, db_ms=1, pay_error=False), decoy, changed, other(4)])
    get = telemetry.registry.get_sample_value
    assert get("tracetriage_trace_tests_total", {"test": "checkout", "spec": "answers 2xx", "result": "pass"}) == 1
    # the changed trace has no status code: the assertion fails on it
    assert get("tracetriage_trace_tests_total", {"test": "checkout", "spec": "answers 2xx", "result": "fail"}) == 1
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "tested"}) == 2
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "untested"}) == 2
    assert get("tracetriage_trace_tests_every_trace", {"processor": "trace_tests"}) == 0


SERVICE_TEST = """
type: Test
spec:
  name: checkout-shop
  specs:
    - selector: span[name="GET /shop" service.name="checkout"]
      name: answers 2xx
      assertions: [attr:http.response.status_code < 300]
    - selector: span[name="GET /cart" service.name="checkout"]
      name: cart over https
      assertions: ['attr:url.scheme = "https"', attr:tracetest.selected_spans.count <= 3]
"""


def shop(i: int, service: str, *, status: int = 200, scheme: str = "https", carts: int = 2) -> list[tuple[Span, str]]:
    t = tid(i)
    return [(span(1, 0, "GET /shop", 0, 10, trace_id=t, **{"http.response.status_code": status}), service)] + [
        (span(2 + c, 1, "GET /cart", 1, 2, trace_id=t, **{"url.scheme": scheme}), service) for c in range(carts)]


def test_tests_about_one_service_of_a_common_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trace holds the test's span name; the service (a resource attribute, or a span's own when the
    resource has none) decides which traces it is about: each counted exactly, through the one-origin path
    (whether any test may apply kept per origin, its candidates per origin and names, within a bound) and the
    general one (two origins, a trace a stage before changed)."""
    import pipelines.trace_tests.processor as processor_module

    monkeypatch.setattr(processor_module, "MAX_CHOSEN", 8)
    fillers = [BY_NAME.format(test=f"orders-{i}", name=f"POST /orders/{i}", spec="one",
                              assertion="attr:tracetest.selected_spans.count = 1") for i in range(3)]
    telemetry = Telemetry()
    proc = make(write_defs(tmp_path / "defs", SERVICE_TEST, *fillers), telemetry)
    get = telemetry.registry.get_sample_value
    expected: dict[tuple[str, str], int] = {}

    def expect(spec: str, result: str) -> None:
        expected[(spec, result)] = expected.get((spec, result), 0) + 1

    traces: list[Trace] = []
    tested = 0
    for i in range(0, 400, 4):
        for k, service in enumerate(("frontend", "checkout", "cart", "payment")):
            fail = i % 3 == 0 and service == "checkout"
            traces.append(buffered(shop(i + k, service, status=500 if fail else 200, carts=1 + i % 5)))
            if service == "checkout":
                expect("answers 2xx", "fail" if fail else "pass")
                expect("cart over https", "pass" if 1 + i % 5 <= 3 else "fail")
                tested += 1
        # checkout in the second origin of a trace
        two = [(span(20, 0, "GET /cart", 0, 1, trace_id=tid(1000 + i)), "frontend"),
               *shop(1000 + i, "checkout", scheme="http")]
        traces.append(buffered(two))
        expect("answers 2xx", "pass")
        expect("cart over https", "fail")  # (frontend's GET /cart, with no url.scheme, is not selected)
        tested += 1
    # the resource names no service: the span's own service.name attribute decides
    s = span(1, 0, "GET /shop", 0, 1, trace_id=tid(5000), **{"service.name": "checkout",
                                                               "http.response.status_code": 200})
    no_service = make_trace([(Resource(), [s])])
    traces.append(no_service)
    expect("answers 2xx", "pass")
    expect("cart over https", "fail")  # no span selected: url.scheme is checked once, on none
    tested += 1
    # a stage before decoded the trace and renamed its root (its bytes hold no GET /shop)
    changed = buffered([(span(1, 0, "GET /home", 0, 1, trace_id=tid(6000), **{"http.response.status_code": 200}),
                         "checkout")])
    for _, root in changed.iter_spans():
        root.name = "GET /shop"
    changed.mark_modified()
    traces.append(changed)
    expect("answers 2xx", "pass")
    expect("cart over https", "fail")
    tested += 1
    proc.process_traces(traces)
    for (spec, result), n in expected.items():
        assert get("tracetriage_trace_tests_total", {"test": "checkout-shop", "spec": spec, "result": result}) == n, (
            spec, result)
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "tested"}) == tested
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "untested"}) == (
        len(traces) - tested)
    assert 0 < get("tracetriage_trace_tests_chosen_entries", {"processor": "trace_tests"}) <= 2 * 8  # (two caches)


def test_the_failed_mark_is_written_into_the_wire_bytes_as_into_decoded_spans() -> None:
    """``tracetest.failed`` on the root: the wire path re-encodes only that span, and sends the same bytes as
    the decoded path (which re-encodes the trace); a mark already there is replaced."""
    from pipelines.trace_tests.processor import TraceTestsProcessor as P

    for value in ("checkout: answers 2xx", "again"):
        wire, decoded = checkout(7, status=500, db_ms=3, pay_error=True), checkout(7, status=500, db_ms=3,
                                                                                   pay_error=True)
        for t in (wire, decoded):
            P._annotate(t, (1).to_bytes(8, "big"), "first")
        decoded.groups()  # (decoded: the mark goes into the decoded spans)
        assert not wire.decoded
        P._annotate(wire, (1).to_bytes(8, "big"), value)
        P._annotate(decoded, (1).to_bytes(8, "big"), value)
        assert not wire.decoded and decoded.decoded
        assert [bytes(c) for _, c in wire.wire_chunks()] == [bytes(c) for _, c in decoded.wire_chunks()]
        assert root_attr(wire) == value
        P._annotate(wire, (99).to_bytes(8, "big"), "nobody")  # (no such span: nothing changes)
        assert root_attr(wire) == value
    # A first mark is appended to the span's bytes (the other spans' and its own fields untouched): the same
    # spans once decoded as the decoded path's, the mark the last attribute.
    wire, decoded = checkout(9, status=500, db_ms=3, pay_error=True), checkout(9, status=500, db_ms=3, pay_error=True)
    decoded.groups()
    before = [bytes(c) for _, c in wire.wire_chunks()]
    P._annotate(wire, (1).to_bytes(8, "big"), "checkout: answers 2xx")
    P._annotate(decoded, (1).to_bytes(8, "big"), "checkout: answers 2xx")
    assert [s for _, s in wire.iter_spans()] == [s for _, s in decoded.iter_spans()]
    after = [bytes(c) for _, c in wire.wire_chunks()]
    grown = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(grown) == 1 and after[grown[0]].count(b"tracetest.failed") == 1
    root = next(s for _, s in wire.iter_spans() if s.span_id == (1).to_bytes(8, "big"))
    assert root.attributes[-1].key == "tracetest.failed"
    ok = checkout(8, status=500, db_ms=3, pay_error=False)
    ok.maybe_error = False  # (as the intake's wire walk finds it: no span in error)
    P._annotate(ok, (1).to_bytes(8, "big"), "checkout: answers 2xx")
    assert root_attr(ok) == "checkout: answers 2xx" and ok.maybe_error is False  # (no error attribute added)
