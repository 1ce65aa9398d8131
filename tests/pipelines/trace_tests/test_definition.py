"""Reading definition files: the Tracetest layout, ${env:NAME}, owner, triggers, and refusals that name the
file, the spec and what is unsupported."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.trace_tests.definition import (
    DefinitionError,
    GrpcTrigger,
    HttpTrigger,
    load_definition,
    load_definition_text,
)

GOOD = """
type: Test
spec:
  id: checkout
  name: Checkout
  owner: payments
  trigger:
    type: http
    httpRequest:
      method: post
      url: ${env:SHOP_URL}/checkout
      headers: [{key: Content-Type, value: application/json}]
      body: '{"cart": 1}'
  specs:
    - selector: span[name="POST /checkout"]
      name: answers
      assertions:
        - attr:http.status_code = ${env:CODE}
    - selector: span[tracetest.span.type="database"]
      assertions:
        - attr:tracetest.span.duration < 50ms
"""


def test_reads_the_tracetest_layout() -> None:
    t = load_definition_text(GOOD, "good.yaml", {"SHOP_URL": "http://shop:8080", "CODE": "200"})
    assert (t.name, t.id, t.owner, t.path) == ("Checkout", "checkout", "payments", "good.yaml")
    assert t.trigger == HttpTrigger("POST", "http://shop:8080/checkout", (("Content-Type", "application/json"),),
                                    '{"cart": 1}')
    assert [s.name for s in t.specs] == ["answers", 'span[tracetest.span.type="database"]']
    assert t.specs[0].assertions[0].text == "attr:http.status_code = 200"


def test_unset_env_is_an_error() -> None:
    with pytest.raises(DefinitionError, match=r"good.yaml: spec.trigger.httpRequest.url: \$\{env:SHOP_URL\} is not"):
        load_definition_text(GOOD, "good.yaml", {"CODE": "1"})


def test_grpc_trigger() -> None:
    text = GOOD.replace("""    type: http
    httpRequest:
      method: post
      url: ${env:SHOP_URL}/checkout
      headers: [{key: Content-Type, value: application/json}]
      body: '{"cart": 1}'""", """    type: grpc
    grpc:
      address: localhost:50051
      method: shop.Checkout.Place
      protobufFile: protos/shop.proto
      request: '{"cart": 1}'
      metadata: [{key: tenant, value: a}]""")
    t = load_definition_text(text, "tests/g.yaml", {"CODE": "0"})
    assert t.trigger == GrpcTrigger("localhost:50051", "shop.Checkout.Place", "protos/shop.proto", '{"cart": 1}',
                                    (("tenant", "a"),), "tests")


def test_repeated_spec_names_are_numbered() -> None:
    text = GOOD.replace("name: answers", "name: same").replace(
        '    - selector: span[tracetest.span.type="database"]', '    - selector: span[tracetest.span.type="database"]\n'
        '      name: same')
    t = load_definition_text(text, "x.yaml", {"SHOP_URL": "http://a", "CODE": "1"})
    assert [s.name for s in t.specs] == ["same", "same #2"]


@pytest.mark.parametrize(("change", "needle"), [
    (("type: Test", "type: TestSuite"), "type 'TestSuite' is not supported"),
    (("  owner: payments", "  owner: payments\n  outputs: []"), "spec: outputs is not supported"),
    (("  owner: payments", "  owner: payments\n  pollingProfile: x"), "pollingProfile is not supported"),
    (("type: http", "type: kafka"), "trigger type 'kafka' is not supported"),
    (("url: ${env:SHOP_URL}/checkout", "url: shop/checkout"), "must be an http:// or https:// URL"),
    (("      name: answers", "      name: answers\n      timeout: 3s"), "spec.specs[0] ('answers'): timeout is not"),
    (('span[name="POST /checkout"]', "span[]"), "spec.specs[0] ('answers').selector:"),
    (("attr:http.status_code = ${env:CODE}", "attr:http.status_code exists"),
     "spec.specs[0] ('answers').assertions[0]: 'attr:http.status_code exists': the comparators 'exists'"),
    (("attr:tracetest.span.duration < 50ms", "attr:x | json_path '$.a' = 1"),
     "spec.specs[1] ('span[tracetest.span.type=\"database\"]').assertions[0]"),
    (("  specs:", "  specs: []\n  other:"), "other is not supported"),
])
def test_refusals_name_file_spec_and_feature(change: tuple[str, str], needle: str) -> None:
    assert change[0] in GOOD
    with pytest.raises(DefinitionError) as info:
        load_definition_text(GOOD.replace(change[0], change[1]), "tests/t.yaml", {"SHOP_URL": "http://a", "CODE": "1"})
    assert str(info.value).startswith("tests/t.yaml: ")
    assert needle in str(info.value)


def test_unreadable_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load_definition(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: Test\nspec: [\n")
    with pytest.raises(DefinitionError, match=r"bad.yaml: line"):
        load_definition(bad)
