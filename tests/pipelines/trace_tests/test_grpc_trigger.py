"""``tracetriage test run`` with gRPC triggers, end to end: a real gRPC service (orders_service, instrumented with
the OpenTelemetry SDK) exports to the command's embedded OTLP receiver; the command compiles the definition's
.proto with protoc, calls the method with the request's JSON, its metadata and a fresh ``traceparent``, collects
the trace and checks it. Trigger failures (no proto, a proto that does not compile, an unknown or streaming
method, a request that is not the message's JSON, nothing listening) are reported per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import JUnitXml

from pipelines.trace_tests.definition import GrpcTrigger, load_definition_text
from pipelines.trace_tests.grpc_trigger import INSTALL_HINT, GrpcTriggerError, Protos
from tests.conftest import ROOT, free_port
from tests.pipelines.trace_tests.support import trace_tests_collector

PROTO = """syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";

message PlaceOrderRequest {
  string item = 1;
  int32 quantity = 2;
}

message PlaceOrderReply {
  int64 order_id = 1;
  string status = 2;
  google.protobuf.Timestamp placed_at = 3;
  int32 discount = 4;
}

service Orders {
  rpc Place(PlaceOrderRequest) returns (PlaceOrderReply);
  rpc Watch(PlaceOrderRequest) returns (stream PlaceOrderReply);
}
"""

CORRECT = """
type: Test
spec:
  name: Placing an order
  trigger:
    type: grpc
    grpc:
      protobufFile: protos/orders.proto
      address: 127.0.0.1:${env:ORDERS_PORT}
      method: shop.v1.Orders.Place
      request: |-
        {"item": "book", "quantity": 2, "giftWrap": true}
      metadata:
        - {key: Tenant, value: acme}
  specs:
    - selector: span[name="Tracetest trigger"]
      name: the call answers OK
      assertions:
        - attr:tracetest.response.status = 0
        - attr:tracetest.response.body contains "placed 2 x book"
        - attr:tracetest.response.body contains "discount"
        - attr:tracetest.response.headers contains "eu-west"
    - selector: span[tracetest.span.type="rpc" name="shop.v1.Orders/Place"]
      name: the server span
      assertions:
        - attr:rpc.method = "Place"
        - attr:app.tenant = "acme"
        - attr:app.quantity = 2
    - selector: span[name="shop.v1.Orders/Place"] span[tracetest.span.type="database"]
      name: one stock query
      assertions:
        - attr:tracetest.selected_spans.count = 1
"""

# The same call with wrong expectations: the status, the tenant and the query count.
WRONG = (CORRECT.replace("name: Placing an order", "name: Placing an order (wrong expectations)")
         .replace("attr:tracetest.response.status = 0", "attr:tracetest.response.status = 5")
         .replace('attr:app.tenant = "acme"', 'attr:app.tenant = "globex"')
         .replace("attr:tracetest.selected_spans.count = 1", "attr:tracetest.selected_spans.count = 2"))

# A non-OK status is a response (the specs decide), here from an inline proto (Tracetest's API form).
NOT_FOUND = """
type: Test
spec:
  name: An unknown item is not found
  trigger:
    type: grpc
    grpc:
      protobufFile: |
""" + "".join(f"        {line}\n" if line else "\n" for line in PROTO.splitlines()) + """
      address: 127.0.0.1:${env:ORDERS_PORT}
      method: shop.v1.Orders/Place
      request: '{"item": ""}'
  specs:
    - selector: span[name="Tracetest trigger"]
      name: the call answers NOT_FOUND
      assertions:
        - attr:tracetest.response.status = 5
        - attr:tracetest.response.body = ""
        - attr:tracetriage.response.status_details contains "no item named"
    - selector: span[name="shop.v1.Orders/Place"]
      name: the server span is in error
      assertions:
        - attr:tracetest.span.status_code = "error"
"""


def tracetriage(*args: str, port: int, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORDERS_PORT": str(port), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "collector", "test", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def receiver_args(grpc_port: int) -> list[str]:
    return ["--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}", "--otlp-http-endpoint", "",
            "--settle", "0.5", "--timeout", "20"]


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    (tmp_path / "protos").mkdir()
    (tmp_path / "protos" / "orders.proto").write_text(PROTO)
    (tmp_path / "order.yaml").write_text(CORRECT)
    (tmp_path / "order-wrong.yaml").write_text(WRONG)
    (tmp_path / "not-found.yaml").write_text(NOT_FOUND)
    return tmp_path


@pytest.fixture
def orders(definitions: Path) -> Iterator[tuple[int, int]]:
    """The instrumented gRPC service (its port) and the OTLP/gRPC port the command's receiver will take."""
    port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.pipelines.trace_tests.orders_service", str(port),
                             f"http://127.0.0.1:{grpc_port}", str(definitions / "protos" / "orders.proto")],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port, grpc_port
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


def test_grpc_trigger_passes_fails_and_saves_the_response(orders: tuple[int, int], definitions: Path) -> None:
    port, grpc_port = orders
    d = definitions
    saved = d / "traces.jsonl"
    # run from another folder: protobufFile is read relative to the definition file
    r = tracetriage("--definition", str(d / "order.yaml"), str(d / "not-found.yaml"), str(d / "order-wrong.yaml"),
                    *receiver_args(grpc_port), "--junit", str(d / "report.xml"), "--save-traces", str(saved),
                    port=port, cwd=Path("/"))
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    good, rest = out.split("FAIL  Placing an order (wrong expectations)", 1)
    assert f"PASS  Placing an order  ({d / 'order.yaml'})  trace " in good
    assert f"PASS  An unknown item is not found  ({d / 'not-found.yaml'})" in good
    assert "FAIL" not in good
    # the wrong expectations fail with the actual values
    assert "FAIL  attr:tracetest.response.status = 5" in rest and "actual 0" in rest
    assert 'FAIL  attr:app.tenant = "globex"' in rest and 'actual "acme"' in rest
    assert "FAIL  attr:tracetest.selected_spans.count = 2" in rest and "actual 1" in rest
    assert "8 specs: 5 passed, 3 failed" in out
    assert JUnitXml.fromfile(str(d / "report.xml")).failures == 3

    # what the trigger span holds: Tracetest's attributes, the body as protobuf JSON with default values
    triggers = []
    for line in saved.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                triggers += [s for s in ss["spans"] if s["name"] == "Tracetest trigger"]
    assert len(triggers) == 3
    attrs = {a["key"]: next(iter(a["value"].values())) for a in triggers[0]["attributes"]}
    assert json.loads(attrs["tracetest.response.body"]) == {
        "orderId": "42", "status": "placed 2 x book", "placedAt": "2023-11-14T22:13:20Z", "discount": 0}
    assert int(attrs["tracetest.response.status"]) == 0
    assert {"key": "x-shop-region", "value": "eu-west"} in json.loads(attrs["tracetest.response.headers"])
    # the service continued the trace the trigger started: its SERVER span's parent is the trigger span
    server = [s for line in saved.read_text().splitlines() for rs in json.loads(line)["resourceSpans"]
              for ss in rs["scopeSpans"] for s in ss["spans"] if s["name"] == "shop.v1.Orders/Place"]
    assert server[0]["parentSpanId"] == triggers[0]["spanId"]
    assert server[0]["traceId"] == triggers[0]["traceId"]

    # --traces on what was saved: the same results, without the service
    offline = tracetriage("--definition", str(d / "order.yaml"), str(d / "not-found.yaml"),
                          str(d / "order-wrong.yaml"), "--traces", str(saved), port=1, cwd=Path("/"))
    assert offline.stdout == out


def test_no_answer_within_the_timeout_is_an_error(orders: tuple[int, int], definitions: Path) -> None:
    port, grpc_port = orders
    slow = definitions / "slow.yaml"
    slow.write_text(CORRECT.replace('"item": "book"', '"item": "slow"'))
    r = tracetriage("--definition", str(slow), *receiver_args(grpc_port), "--timeout", "1.5", port=port)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"error: trigger grpc 127.0.0.1:{port} shop.v1.Orders.Place failed: no response within 1.5s "
            "(--timeout)") in r.stdout


def test_grpc_trigger_failures_are_reported_per_test(definitions: Path) -> None:
    d = definitions
    down = free_port()  # nothing listens there
    cases = {
        "missing-proto": CORRECT.replace("protos/orders.proto", "protos/none.proto"),
        "bad-proto": CORRECT.replace("protos/orders.proto", "protos/bad.proto"),
        "unknown-method": CORRECT.replace("shop.v1.Orders.Place", "shop.v1.Orders.Cancel"),
        "unknown-service": CORRECT.replace("shop.v1.Orders.Place", "shop.v2.Orders.Place"),
        "streaming": CORRECT.replace("shop.v1.Orders.Place", "shop.v1.Orders.Watch"),
        "bad-request": CORRECT.replace('{"item": "book", "quantity": 2, "giftWrap": true}', '{"quantity": "two"}'),
        "server-down": CORRECT,
    }
    (d / "protos" / "bad.proto").write_text(PROTO.replace("int32 quantity = 2;", "int32 quantity = ;"))
    for name, text in cases.items():
        (d / f"{name}.yaml").write_text(text.replace("name: Placing an order", f"name: {name}"))
    r = tracetriage("--definition", *(str(d / f"{n}.yaml") for n in cases), *receiver_args(free_port()),
                    "--timeout", "5", port=down)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "Traceback" not in out + r.stderr
    prefix = f"trigger grpc 127.0.0.1:{down}"
    assert f"{prefix} shop.v1.Orders.Place failed: protobufFile protos/none.proto: cannot read " \
           f"{d / 'protos' / 'none.proto'}: No such file or directory" in out
    assert (f"{prefix} shop.v1.Orders.Place failed: protobufFile protos/bad.proto: protoc: "
            f"{d / 'protos' / 'bad.proto'}:8:20: Expected field number.") in out
    assert (f"{prefix} shop.v1.Orders.Cancel failed: method shop.v1.Orders.Cancel: service shop.v1.Orders has no "
            "method 'Cancel' (its methods: Place, Watch)") in out
    assert (f"{prefix} shop.v2.Orders.Place failed: method shop.v2.Orders.Place: protobufFile protos/orders.proto "
            "has no service 'shop.v2.Orders' (its services: shop.v1.Orders)") in out
    assert f"{prefix} shop.v1.Orders.Watch failed: method shop.v1.Orders.Watch is a streaming method" in out
    assert f"{prefix} shop.v1.Orders.Place failed: request: not a shop.v1.PlaceOrderRequest in JSON:" in out
    assert f"{prefix} shop.v1.Orders.Place failed: cannot connect to 127.0.0.1:{down}" in out
    assert out.endswith("7 test runs, 0 specs: 0 passed, 0 failed, 7 errors\n")


@pytest.mark.parametrize(("change", "needle"), [
    (("method: shop.v1.Orders.Place", "method: Place"), "spec.trigger.grpc.method: must be package.Service.Method"),
    (("address: 127.0.0.1:${env:ORDERS_PORT}", "address: http://127.0.0.1:1"), "spec.trigger.grpc.address: must be"),
    (("address: 127.0.0.1:${env:ORDERS_PORT}", "address: 127.0.0.1:99999"), "spec.trigger.grpc.address: must be"),
    (("      protobufFile: protos/orders.proto\n", ""), "spec.trigger.grpc.protobufFile: required"),
    (("      metadata:", "      auth: {type: bearer, bearer: {token: x}}\n      metadata:"),
     "spec.trigger.grpc.auth: not supported for gRPC triggers"),
    (("{key: Tenant, value: acme}", "{key: grpc-timeout, value: 1S}"),
     "spec.trigger.grpc.metadata: key 'grpc-timeout'"),
    (("{key: Tenant, value: acme}", "{key: Tenant, value: café}"),
     "spec.trigger.grpc.metadata: the value of 'Tenant' cannot be sent"),
])
def test_bad_grpc_triggers_are_refused_at_load(definitions: Path, change: tuple[str, str], needle: str) -> None:
    assert change[0] in CORRECT
    d = definitions / "refused.yaml"
    d.write_text(CORRECT.replace(change[0], change[1]))
    r = tracetriage("--definition", str(d), *receiver_args(free_port()), port=1)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"refused: {d}: {needle}" in r.stderr


async def test_a_proto_is_compiled_once_a_run(definitions: Path) -> None:
    """Triggers naming one file share its compiled descriptors: the second finds them even once the file is gone."""
    protos = Protos()
    place = GrpcTrigger("127.0.0.1:1", "shop.v1.Orders.Place", "protos/orders.proto", base_dir=str(definitions))
    pool, method = await protos.method(place, 20)
    assert (method.input_type.full_name, method.output_type.full_name) == ("shop.v1.PlaceOrderRequest",
                                                                           "shop.v1.PlaceOrderReply")
    (definitions / "protos" / "orders.proto").unlink()
    same_file = GrpcTrigger("127.0.0.1:1", "shop.v1.Orders/Place", "protos/../protos/orders.proto",
                        base_dir=str(definitions))
    again, same = await protos.method(same_file, 20)
    assert again is pool and same.full_name == method.full_name
    with pytest.raises(GrpcTriggerError, match="cannot read"):  # a new run compiles anew
        await Protos().method(place, 20)


def test_without_grpcio_tools_the_command_says_what_to_install(definitions: Path) -> None:
    """grpc_tools made unimportable in the command's process (as when the tracetests extra is not installed)."""
    code = ("import sys; sys.modules['grpc_tools'] = None; from collector.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "test", "run", "--definition", str(definitions / "order.yaml"),
                        *receiver_args(free_port())], cwd=ROOT, env={**os.environ, "ORDERS_PORT": "1"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"trigger grpc 127.0.0.1:1 shop.v1.Orders.Place failed: protobufFile protos/orders.proto: " \
           f"{INSTALL_HINT}" in r.stdout
    assert "pip install tracetriage[tracetests]" in INSTALL_HINT


def test_the_documented_example_loads() -> None:
    doc = (ROOT / "docs" / "components" / "processors" / "trace_tests.md").read_text()
    example = doc.split("### gRPC triggers", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    t = load_definition_text(example, "docs/orders.yaml", {})
    assert t.trigger == GrpcTrigger("orders.shop.svc:50051", "shop.v1.Orders.Place", "protos/orders.proto",
                                    '{"item": "book", "quantity": 2}', (("tenant", "acme"),), "docs")


@pytest.mark.timeout(180)
def test_collector_mode_fires_the_grpc_trigger(definitions: Path, collector_factory) -> None:
    """``--collector URL``: the service exports to a running tracetriage whose trace_tests processor loads the same
    definitions; the command makes the gRPC call, checks the trigger's specs itself and reads the rest."""
    d = definitions
    defs = d / "defs"
    defs.mkdir()
    (defs / "order.yaml").write_text(CORRECT)
    (defs / "order-wrong.yaml").write_text(WRONG)
    col, grpc_port, metrics_port = trace_tests_collector(d, defs, collector_factory)
    port = free_port()
    (defs / "protos").mkdir()
    (defs / "protos" / "orders.proto").write_text(PROTO)
    proc = subprocess.Popen([sys.executable, "-m", "tests.pipelines.trace_tests.orders_service", str(port),
                             f"http://127.0.0.1:{grpc_port}", str(defs / "protos" / "orders.proto")],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{metrics_port}"
        ok = tracetriage("--definition", str(defs / "order.yaml"), "--collector", url, "--timeout", "30", port=port)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "3 specs: 3 passed, 0 failed" in ok.stdout
        bad = tracetriage("--definition", str(defs / "order-wrong.yaml"), "--collector", url, "--timeout", "30",
                          port=port)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "FAIL  attr:tracetest.response.status = 5" in bad.stdout  # checked here, on the trigger span
        assert 'FAIL  attr:app.tenant = "globex"' in bad.stdout and 'actual "acme"' in bad.stdout  # read there
        assert "3 specs: 0 passed, 3 failed" in bad.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()
    assert col.terminate() == 0
