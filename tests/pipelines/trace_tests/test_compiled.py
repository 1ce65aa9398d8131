"""The compiled check answers as the Python evaluation: on random traces (names, services, kinds, statuses,
attributes of every type, a key or a span id given twice, one origin or several) and random definitions of
what compiles and what does not, a processor with the compiled check counts every spec, marks every failing
trace and keeps every failure window as a processor without it does; and the compiled check answers most
traces itself."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector import ComponentID, Kind, Settings
from collector.config import decode
from collector.model import Trace, make_trace
from collector.telemetry import Telemetry
from pipelines.trace_tests import FAILED_ATTRIBUTE, TEST_FAILURES, Config, TraceTestsProcessor
from pipelines.trace_tests.compiled import FAILED, FALLBACK, PASSED, Checked, CompiledTests, load
from tests.pipelines.trace_tests.shop_trace import kv, span

pytestmark = pytest.mark.skipif(load() is None, reason="the compiled check needs numba (the jit extra)")

NAMES = ["GET /cart", "GET /shop", "POST /buy", "query", ""]
SERVICES = ["frontend", "cart", "payment"]
COMPILED_SELECTORS = [
    'span[name="GET /cart"]',
    'span[name="GET /cart" service.name="cart"]',
    'span[service.name="payment" name="POST /buy"]',
    'span[service.name="payment"]',
    'span[name="GET /shop" region="eu"]',  # a resource attribute in some origins, a span's own in others
    'span[name="GET /shop" kind="client"]',  # decided per span: undecided for the kernel
    'span[name="nowhere"]',
    'span[name=""]',
]
OTHER_SELECTORS = [
    'span[name="GET /shop"]:first',
    'span[name="GET /shop"] span[name="query"]',
    'span[name contains "GET"]',
    'span[name="GET /shop"], span[name="GET /cart"]',
    "",
]
COMPILED_ASSERTIONS = [
    "attr:tracetest.selected_spans.count <= 2", "attr:tracetest.selected_spans.count >= 1",
    "attr:tracetest.selected_spans.count = 0", "attr:tracetest.selected_spans.count != 3",
    "attr:tracetest.span.duration < 5ms", "attr:tracetest.span.duration >= 1ms", "attr:tracetest.span.duration = 0",
    "attr:tracetest.span.start_time > 0", "attr:tracetest.span.end_time <= 1700000000009000000",
    'attr:tracetest.span.status_code != "error"', 'attr:tracetest.span.status_code = "unset"',
    'attr:tracetest.span.status_code contains "e"', 'attr:kind = "server"', 'attr:tracetest.span.kind != "client"',
    'attr:name = "GET /cart"', 'attr:tracetest.span.name contains "GET"', 'attr:name != "query"',
    "attr:http.status_code < 300", "attr:http.status_code = 200", "attr:http.status_code >= 2.5",
    'attr:url.scheme = "https"', 'attr:url.scheme contains "http"', 'attr:x not-contains "a"', "attr:x >= 2",
    'attr:x = "true"', "attr:x != 200",
]
PASSING = ["attr:tracetest.selected_spans.count >= 0", "attr:tracetest.span.duration < 1s",
           'attr:tracetest.span.kind != "producer"', 'attr:name != "nothing"', "attr:tracetest.span.start_time > 0"]
OTHER_ASSERTIONS = ['attr:tracetest.span.type = "http"', 'attr:service.name = "cart"',
                    'attr:tracetest.selected_spans.count = "1"', 'attr:tracetest.span.duration contains "1"',
                    "attr:name < 3", "attr:tracetest.span.parent_id != \"\""]
VALUES: list[object] = [200, 500, "200", 2.5, 200.0, True, "https", "http", "", "GET /cart", "12ms", -1, 2]


def definitions(rnd: random.Random, directory: Path, count: int) -> Path:
    directory.mkdir()
    for i in range(count):
        specs: list[dict[str, Any]] = []
        for j in range(rnd.randint(1, 3)):
            selector = rnd.choice(COMPILED_SELECTORS if j == 0 or rnd.random() < 0.9 else OTHER_SELECTORS)
            pool = COMPILED_ASSERTIONS if rnd.random() < 0.85 else COMPILED_ASSERTIONS + OTHER_ASSERTIONS
            chosen = rnd.sample(PASSING, rnd.randint(1, 2))  # (many specs pass: the kernel answers those)
            if rnd.random() < 0.4:
                chosen += rnd.sample(pool, 1)
            specs.append({"selector": selector, "name": f"spec {j}", "assertions": chosen})
        if rnd.random() < 0.2:  # about the trigger: not checked live
            specs.append({"selector": 'span[name="Tracetest trigger"]', "name": "trigger",
                          "assertions": ["attr:tracetest.response.status = 200"]})
        doc = {"type": "Test", "spec": {"name": f"test {i}", "owner": "team", "specs": specs}}
        (directory / f"t{i}.yaml").write_text(json.dumps(doc))
    return directory


def random_spans(rnd: random.Random, t: int) -> list[tuple[Span, str]]:
    tid = t.to_bytes(16, "big")
    services = [rnd.choice(SERVICES)] if rnd.random() < 0.85 else rnd.sample(SERVICES, 2)
    out: list[tuple[Span, str]] = []
    ids = [0]
    for n in range(1, rnd.randint(1, 8) + 1):
        ids.append(rnd.getrandbits(64) | 1 if rnd.random() > 0.03 else ids[-1] or 1)  # (high bits; a copy)
        s = span(ids[n], rnd.choice(ids[:n]), rnd.choice(NAMES), rnd.randint(0, 5),
                 rnd.choice([0, 0.5, 1, 3, 7]), error=rnd.random() < 0.15, trace_id=tid,
                 kind=rnd.choice([Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL, 9]))
        if rnd.random() < 0.1:
            s.status.code = 1
        for key in ("http.status_code", "url.scheme", "x", "region"):
            for _ in range(rnd.choice([0, 0, 1, 1, 2])):  # (twice: the last counts)
                s.attributes.append(kv(key, rnd.choice(VALUES)))
        if rnd.random() < 0.05:
            s.attributes.append(kv("kind", "own"))  # (the pseudo-attribute wins)
        out.append((s, rnd.choice(services)))
    return out


def traced(spans: list[tuple[Span, str]], region: str, grown: bool = False) -> Trace:
    """The trace as the buffer holds it (wire bytes per resource), ``region`` in its resources when given;
    ``grown``: its bytes in a bytearray, as when more spans of its origin arrived later."""
    by_service: dict[str, list[Span]] = {}
    for s, service in spans:
        by_service.setdefault(service, []).append(s)
    trace = make_trace([(Resource(attributes=[kv("service.name", svc), *([kv("region", region)] if region else [])]),
                         ss) for svc, ss in by_service.items()])
    if grown:
        trace.chunks = {origin: bytearray(chunk) for origin, chunk in trace.chunks.items()}
    elif len(by_service) == 1:  # as the trace buffer files one origin's spans: in two slots, no dict
        ((origin, chunk),) = trace.chunks.items()
        held = Trace(trace.trace_id, 0.0, origin=origin, framed=bytes(chunk), spans=trace.span_count,
                     start=trace.start, end=trace.end)
        held.root_seen = trace.root_seen
        assert held.single_chunk() == (origin, chunk) and Trace.singles([held])[0] == [held]
        return held
    return trace


def processor(directory: Path, alerting: dict[str, object] | None = None, max_spans: int = 10_000
              ) -> tuple[TraceTestsProcessor, Telemetry]:
    telemetry = Telemetry()
    cfg = decode(Config, {"definitions": str(directory), "reload_interval": "0s", "alerting": alerting or {},
                          "max_spans": max_spans},
                 "processors.trace_tests")
    return TraceTestsProcessor(Settings(ComponentID("trace_tests"), Kind.PROCESSOR, telemetry,
                                        logging.getLogger("trace_tests-test")), cfg), telemetry


def counts(telemetry: Telemetry) -> dict[tuple[str, ...], float]:
    out = {}
    for family in telemetry.registry.collect():
        if family.name.startswith("tracetriage_trace_tests"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return out  # type: ignore[return-value]


def root_mark(trace: Trace) -> list[str | None]:
    return [next((kv.value.string_value for kv in s.attributes if kv.key == FAILED_ATTRIBUTE), None)
            for _, s in trace.iter_spans()]


def note_keys(trace: Trace) -> list[tuple[object, ...]]:
    return [(f.test, f.spec, f.team, f.service, f.failed_assertions, f.actual)
            for f in trace.note(TEST_FAILURES) or []]


@pytest.mark.parametrize(("seed", "paging", "max_spans"), [(3, False, 10_000), (5, True, 10_000), (10, True, 6),
                                                           (11, False, 10_000)])
def test_the_compiled_check_answers_as_the_python_evaluation(tmp_path: Path, seed: int, paging: bool,
                                                             max_spans: int) -> None:
    """With ``paging`` every failure is paged (the default thresholds): its note names the failed assertions
    and the first failed check, as the Python evaluation writes them. ``max_spans``: larger traces are not
    tested, counted."""
    rnd = random.Random(seed)
    directory = definitions(rnd, tmp_path / "defs", 4)
    alerting: dict[str, object] = {} if paging else {"min_failures": 10**9}
    fast, fast_telemetry = processor(directory, alerting, max_spans)
    slow, slow_telemetry = processor(directory, alerting, max_spans)
    compiled = fast._compiled
    assert isinstance(compiled, CompiledTests)
    slow._compiled = None
    answered = {PASSED: 0, FAILED: 0, FALLBACK: 0}
    run = compiled.run

    def counting(*args: Any) -> Checked:
        checked = run(*args)
        for s in answered:
            answered[s] += int(np.count_nonzero(checked.status == s))
        return checked

    compiled.run = counting  # type: ignore[method-assign]
    for round_ in range(40):
        made = [random_spans(rnd, 1000 * round_ + i + 1) for i in range(60)]
        regions = [rnd.choice(["", "", "eu", "us"]) for _ in made]
        grown = [rnd.random() < 0.2 for _ in made]
        a = [traced(s, r, g) for s, r, g in zip(made, regions, grown, strict=True)]
        b = [traced(s, r, g) for s, r, g in zip(made, regions, grown, strict=True)]
        fast.process_traces(a)
        slow.process_traces(b)
        for x, y in zip(a, b, strict=True):
            assert root_mark(x) == root_mark(y)
            assert note_keys(x) == note_keys(y)
            assert [bytes(c) for _, c in x.wire_chunks()] == [bytes(c) for _, c in y.wire_chunks()]
    assert counts(fast_telemetry) == counts(slow_telemetry)
    too_large = counts(fast_telemetry).get(("tracetriage_trace_tests_traces_total", ("outcome", "too_large"),
                                            ("processor", "trace_tests")), 0)
    assert (too_large > 100) == (max_spans < 8), too_large
    assert {k: w.counts(0.0) for k, w in fast._windows.items()} == {k: w.counts(0.0) for k, w in slow._windows.items()}
    # (the kernel answers traces itself, passing and failing, not only hands them on)
    assert answered[PASSED] > 50 and answered[FAILED] > 100 and answered[FALLBACK] > 100, answered


def test_a_first_selector_that_does_not_compile_keeps_the_python_evaluation(tmp_path: Path) -> None:
    directory = tmp_path / "defs"
    directory.mkdir()
    doc = {"type": "Test", "spec": {"name": "t", "specs": [
        {"selector": 'span[name="GET /shop"]:first', "assertions": ["attr:tracetest.selected_spans.count = 1"]}]}}
    (directory / "t.yaml").write_text(json.dumps(doc))
    proc, _ = processor(directory)
    assert proc._compiled is None


SHOP = {"type": "Test", "spec": {"name": "shop", "owner": "web", "specs": [
    {"selector": 'span[name="GET /shop" service.name="checkout"]', "name": "answers 2xx",
     "assertions": ["attr:http.response.status_code < 300", 'attr:tracetest.span.status_code != "error"']},
    {"selector": 'span[name="GET /shop" service.name="checkout"]', "name": "under 500ms",
     "assertions": ["attr:tracetest.span.duration < 500ms"]},
    {"selector": 'span[name="GET /cart" service.name="checkout"]', "name": "cart over https",
     "assertions": ['attr:url.scheme = "https"', "attr:tracetest.selected_spans.count <= 9"]},
    {"selector": 'span[name="Tracetest trigger"]', "name": "trigger",
     "assertions": ["attr:tracetest.response.status = 200"]}]}}


def shop_trace(i: int, service: str, *, ms: float = 20, status: int = 200, scheme: str = "https") -> Trace:
    tid = i.to_bytes(16, "big")
    root = span(1, 0, "GET /shop", 0, ms, trace_id=tid)
    root.attributes.append(kv("http.response.status_code", status))
    carts = [span(2 + c, 1, "GET /cart", 1, 2, kind=Span.SPAN_KIND_CLIENT, trace_id=tid) for c in range(3)]
    for s in carts:
        s.attributes.append(kv("url.scheme", scheme))
    return traced([(root, service), *((s, service) for s in carts)], "")


def test_the_kernel_answers_the_passing_traces_and_hands_on_the_failing(tmp_path: Path) -> None:
    directory = tmp_path / "defs"
    directory.mkdir()
    (directory / "shop.yaml").write_text(json.dumps(SHOP))
    proc, telemetry = processor(directory)
    compiled = proc._compiled
    assert compiled is not None
    traces = [shop_trace(i, "checkout") for i in range(1, 101)] + [shop_trace(i, "cart") for i in range(101, 201)]
    passed = [shop_trace(301, "checkout")]
    failing = [shop_trace(401, "checkout", ms=900), shop_trace(402, "checkout", status=503),
               shop_trace(403, "checkout", scheme="http")]
    chunks, rows = [], []
    for t in traces[:100] + passed + failing:
        one = t.single_chunk()
        assert one is not None
        chunks.append(one[1])
        rows.append(compiled.row(one[0], proc._resource(one[0])))
    checked = compiled.run(chunks, rows, list(range(len(chunks) + 1)), 4)
    assert checked.status.tolist() == [PASSED] * 101 + [FAILED] * 3
    assert checked.applied.tolist() == [[i, 0] for i in range(104)]
    assert checked.failed[:, 0].tolist() == [101, 102, 103]  # (one failed spec each)
    cart = traces[150].single_chunk()
    assert cart is not None and compiled.row(cart[0], {"service.name": "cart"}) < 0  # (no test is about it)

    proc.process_traces(traces + passed + failing)
    get = telemetry.registry.get_sample_value
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "tested"}) == 104
    assert get("tracetriage_trace_tests_traces_total", {"processor": "trace_tests", "outcome": "untested"}) == 100

    def total(spec: str, result: str) -> float | None:
        return get("tracetriage_trace_tests_total", {"test": "shop", "spec": spec, "result": result})

    assert (total("answers 2xx", "pass"), total("answers 2xx", "fail")) == (103, 1)
    assert (total("under 500ms", "pass"), total("under 500ms", "fail")) == (103, 1)
    assert (total("cart over https", "pass"), total("cart over https", "fail")) == (103, 1)
    assert total("trigger", "not_applicable") == 104
    assert [root_mark(t)[0] for t in failing] == ["shop: under 500ms", "shop: answers 2xx", "shop: cart over https"]
    # The notes to page name the first failed check as the Python evaluation does (the third fails on three
    # spans: the first in Tracetest's order is the one named).
    slow, _ = processor(directory)
    slow._compiled = None
    again = [shop_trace(401, "checkout", ms=900), shop_trace(402, "checkout", status=503),
             shop_trace(403, "checkout", scheme="http")]
    slow.process_traces(again)
    assert [note_keys(t) for t in failing] == [note_keys(t) for t in again]
    assert "GET /cart (0000000000000002)" in note_keys(failing[2])[0][5]  # type: ignore[operator]
    assert proc._windows[("shop", "under 500ms")].counts(0.0) == (104, 1)


def test_the_kernel_orders_spans_as_tracetest_does() -> None:
    """Tracetest's order (depth first from the roots, children by start time then id) and the root, from the
    kernel's id table, on random forests: parents missing, a span its own parent, equal start times, and
    cycles of parents (which the kernel leaves to Python)."""
    from pipelines.trace_tests import _kernel as k
    from pipelines.trace_tests.spans import TestSpan, TestTrace

    rnd = random.Random(7)
    cycles = 0
    for _ in range(400):
        n = rnd.randint(1, 60)
        ids = [v ^ rnd.choice((0, 1 << 63)) for v in rnd.sample(range(1, 2**63), n)]  # (top bit set or not)
        parents = [rnd.choice([0, rnd.getrandbits(62) | 1, *ids]) if rnd.random() < 0.9 else ids[i]
                   for i in range(n)]
        starts = [rnd.randint(0, 5) for _ in range(n)]
        made = [Span(span_id=i.to_bytes(8, "big"), parent_span_id=p.to_bytes(8, "big") if p else b"",
                     start_time_unix_nano=s + 1, end_time_unix_nano=s + 2) for i, p, s in
                zip(ids, parents, starts, strict=True)]
        spans = np.zeros((n, k.S_COLS), dtype=np.int64)
        for r, s in enumerate(made):
            spans[r, k.S_ID] = int.from_bytes(s.span_id, "little", signed=True)
            spans[r, k.S_PARENT] = int.from_bytes(s.parent_span_id, "little", signed=True) if s.parent_span_id else 0
            spans[r, k.S_START] = s.start_time_unix_nano
        seen = np.zeros((256, 3), dtype=np.int64)
        assert k._unique(spans, n, seen, 1)
        ranks = np.empty(n, dtype=np.int64)
        trace = TestTrace(b"t" * 16, [TestSpan(s, {}) for s in made])
        ordered = [s.span_id for s in trace.ordered]
        if k._ranks(spans, n, ranks, seen, 1, np.empty((4, n + 2), dtype=np.int64)):
            assert [made[r].span_id for r in np.argsort(ranks)] == ordered
        else:
            cycles += 1
            roots = {id(s) for s in trace.roots}
            assert any(s.parent is None and id(s) not in roots for s in trace.spans)  # (a cycle's, cut)
        root = k._root(spans, n, seen, 1)
        assert (made[root].span_id if root >= 0 else None) == (trace.root.span_id if trace.root else None)
    assert 0 < cycles < 400
