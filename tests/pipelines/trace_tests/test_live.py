"""The live plans answer as the full evaluation does: each compiled assertion as ``Assertion.check``, each
selector and spec on thousands of random traces (names, services, attributes, several origins, a span id
given twice) as ``Selector.select`` and ``run_spec``; the resource pre-check never rules out a trace a
selector selects a span of."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines.trace_tests.assertion import Assertion, parse_assertion, predicate
from pipelines.trace_tests.definition import Spec, TestDefinition
from pipelines.trace_tests.evaluate import run_spec
from pipelines.trace_tests.library import LiveTest
from pipelines.trace_tests.live import LiveTrace, fast_selector, may_select, plan_tests
from pipelines.trace_tests.selector import parse_selector
from pipelines.trace_tests.spans import TestSpan, Value, attributes
from tests.pipelines.trace_tests.shop_trace import kv, span

VALUES: list[object] = [200, 404, 0, -3, 2.5, 200.0, True, False, "200", "2.5", "12ms", "1.5s", "POST", "post",
                        "GET /cart", "", " 7 ", "error", "ok"]
ASSERTIONS = [f"attr:{key} {cmp} {value}"
              for key in ("x", "tracetest.selected_spans.count", "tracetest.span.duration", "name",
                          "tracetest.span.status_code", "service.name", "tracetest.response.status", "missing")
              for cmp in ("=", "!=", "<", "<=", ">", ">=", "contains", "not-contains")
              for value in ("200", "2.5", "0", "10ms", "1.5s", '"POST"', '"200"', "true", '"error"', '"GET"')
              if not (cmp in ("<", "<=", ">", ">=") and value[0] in "\"t")]


def test_compiled_assertions_answer_as_check() -> None:
    """Every comparator and kind of expected value, on attributes of every type, with no span, with a span
    missing the attribute, and with a trigger response or none."""
    parsed: list[Assertion] = [parse_assertion(a) for a in ASSERTIONS]
    assert len(parsed) > 400
    spans: list[TestSpan | None] = [None]
    for i, value in enumerate(VALUES):
        s = span(i + 1, 0, "GET /cart", 0, 3 * i, error=i % 3 == 0, x=value)
        spans.append(TestSpan(s, {"service.name": "cart"} if i % 2 else {"service.name": str(value)}))
    responses: list[dict[str, Value]] = [{}, {"tracetest.response.status": 200}, {"tracetest.response.status": "x"}]
    checked = 0
    for a in parsed:
        fast = predicate(a)
        for s in spans:
            for selected in (0, 1, 9, 200):
                for response in responses:
                    assert fast(s, selected, response) == a.check(s, selected, response).passed, (a.text, s)
                    checked += 1
    assert checked > 100_000


NAMES = ["GET /cart", "GET /shop", "POST /buy", "query"]
SERVICES = ["frontend", "cart", "payment"]
SELECTORS = [
    'span[name="GET /cart"]',
    'span[name="GET /cart" service.name="cart"]',
    'span[service.name="payment" name="POST /buy"]',
    'span[name="GET /shop"], span[name="GET /cart" http.status_code=200]',
    'span[name="GET /shop"], span[service.name="cart"]',
    'span[name contains "GET"]',
    'span[tracetest.span.name="query" db.system="redis"]',
    'span[name="GET /cart" name="GET /shop"]',
    'span[name="GET /cart" kind="client"]',
    'span[tracetest.span.status_code="error"]',
    'span[region="eu"]',  # a resource attribute in some origins, a span attribute in others
    'span[name="POST /buy" region="us"]',
    'span[name="nowhere"]',
    'span[name="GET /shop"]:first',  # (not a fast selector: the full evaluation answers)
    'span[name="GET /shop"] span[name="query"]',
    "",
]
ASSERTED = ["attr:tracetest.selected_spans.count <= 2", "attr:http.status_code < 300",
            'attr:tracetest.span.status_code != "error"', "attr:tracetest.span.duration < 5ms",
            'attr:service.name = "cart"', 'attr:region contains "e"', 'attr:db.system = "redis"']

COUNTS = ["attr:tracetest.selected_spans.count <= 2", "attr:tracetest.selected_spans.count >= 1",
          "attr:tracetest.selected_spans.count = 0", "attr:tracetest.selected_spans.count != 3"]


def random_trace(rnd: random.Random) -> list[tuple[dict[str, Value], list[Span]]]:
    groups: list[tuple[dict[str, Value], list[Span]]] = []
    n = 0
    for _ in range(rnd.randint(1, 3)):
        res: dict[str, Value] = {"service.name": rnd.choice(SERVICES)}
        if rnd.random() < 0.3:
            res["region"] = rnd.choice(["eu", "us"])
        spans = []
        for _ in range(rnd.randint(0, 6)):
            n += 1
            s = span(n if rnd.random() > 0.05 else 1, rnd.randint(0, n - 1), rnd.choice(NAMES),
                     rnd.randint(0, 5), rnd.randint(0, 9), error=rnd.random() < 0.2,
                     kind=rnd.choice([Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT]))
            if rnd.random() < 0.5:
                s.attributes.append(kv("http.status_code", rnd.choice([200, 500, "200"])))
            if rnd.random() < 0.3:
                s.attributes.append(kv("db.system", rnd.choice(["redis", "postgresql"])))
            if rnd.random() < 0.2:
                s.attributes.append(kv("region", rnd.choice(["eu", "us"])))
            if rnd.random() < 0.1:
                s.attributes.append(kv("service.name", "payment"))  # loses to the resource's
            spans.append(s)
        groups.append((res, spans))
    return groups


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_selection_and_specs_answer_as_the_full_evaluation(seed: int) -> None:
    rnd = random.Random(seed)
    selectors = [parse_selector(s) for s in SELECTORS]
    specs = [Spec(sel.text or "all", sel, tuple(parse_assertion(a) for a in rnd.sample(ASSERTED, 2)))
             for sel in selectors for _ in range(3)]
    counts = [parse_assertion(a) for a in COUNTS]
    specs += [Spec(f"count {sel.text}", sel, (counts[k], counts[(k + 1) % len(counts)]))  # (spans counted, not viewed)
              for sel in selectors for k in range(len(counts))]
    plans = {id(sp.spec): sp for p in plan_tests([_live(specs)]).values() for sp in p.specs if sp is not None}
    fast_answers = applies = 0
    for _ in range(1500):
        groups = random_trace(rnd)
        live = LiveTrace(b"t" * 16, groups)
        full = live.full()
        resources = [res for res, _ in groups]
        for sel in selectors:
            selected = sel.select(full)
            if not may_select(sel, resources):
                assert not selected, sel.text
            assert live.applies(fast_selector(sel)) is (not sel.paths or bool(selected)), sel.text
            applies += bool(selected)
        for spec in specs:
            # on the trace whose selections are kept from the specs before, and on a fresh one
            got = live.passes(plans[id(spec)])
            alone = LiveTrace(b"t" * 16, groups).passes(plans[id(spec)])
            assert got == alone
            if got is not None:
                fast_answers += 1
                assert got == run_spec(spec, full).passed, (spec.selector.text, spec.assertions, groups)
    assert applies > 5000 and fast_answers > 30_000  # (the random traces select spans, the fast path answers)


def _live(specs: list[Spec]) -> LiveTest:
    d = TestDefinition("random.yaml", "random", tuple(specs))
    return LiveTest(d, specs[0].selector, None, tuple(True for _ in specs))


def test_one_attribute_read_as_the_decoded_attributes() -> None:
    """``get`` reads one attribute without decoding them all: the last of a key given twice and the
    pseudo-attributes over a span's own of the same name, as ``attrs`` has them; a resource attribute first
    (as ``get`` always read it, even one named ``kind``, which ``attrs`` gives the span's kind)."""
    s = span(1, 0, "GET /a", 0, 7, kind=Span.SPAN_KIND_CLIENT, error=True, x=1, y="a")
    s.attributes.extend([kv("x", 2), kv("kind", "own"), kv("tracetest.span.duration", "own"), kv("http.url", "u")])
    for res in ({"service.name": "a"}, {"service.name": "a", "x": "res", "kind": "res"}):
        v = TestSpan(s, res)
        keys = [*attributes(s.attributes), *res, "name", "kind", "tracetest.span.type", "tracetest.span.kind",
                "tracetest.span.duration", "tracetest.span.status_code", "tracetest.span.parent_id", "nope"]
        got = {k: v.get(k) for k in keys}
        attrs = TestSpan(s, res).attrs
        assert got == {k: res[k] if k in res else attrs.get(k) for k in keys}
        assert got["x"] == res.get("x", 2)
