"""The 20 trace-test definitions of the ``full_trace_tests*`` benchmark scenarios (bench/run.py).

Most test endpoints the reference load does not have (``POST /orders/1`` ...), as a service's test suite
mostly tests other endpoints than the one under load. ``all``: the twentieth tests the reference load's own
root span (``GET /shop``) and the payment service's calls, so every trace of the load is tested (the worst
case). ``mix``: two test one endpoint of one service (checkout's ``GET /shop`` and its calls), so a fifth of
the load's traces is tested (the reference load's traces are one service's each, five services), while every
trace holds the name ``GET /shop``: the tests must be told apart by service, not only by span name. One spec
(``shop under 500ms``) fails on the load's slow traces (one checkout trace in ten), as a live test does now
and then: the failure path (report, ``tracetest.failed``, alerting) runs too.
``idle``: none applies. The tests about other endpoints name checkout as their service, as a service's suite
does: the stage rules the other four services' traces out by their resource, without searching their bytes;
checkout's traces are searched for the names. (The reference load's parent ids point nowhere: its traces are
flat, so no descendant selector.)
"""

from __future__ import annotations

from pathlib import Path

OTHER = """type: Test
spec:
  name: orders-{i}
  owner: orders
  specs:
    - selector: span[name="POST /orders/{i}" service.name="checkout"]
      name: answers 2xx
      assertions: [attr:http.response.status_code < 300, attr:tracetest.span.duration < 2s]
    - selector: span[name="POST /orders/{i}"] span[tracetest.span.type="database"]
      name: queries fast
      assertions: [attr:tracetest.span.duration < 100ms]
"""

SHOP = """type: Test
spec:
  name: shop
  owner: web
  specs:
    - selector: span[name="GET /shop"]
      name: shop answers 2xx
      assertions: [attr:http.response.status_code < 300, attr:tracetest.span.duration < 2s]
    - selector: span[name="GET /cart" service.name="payment"]
      name: at most 9 cart calls in payment
      assertions: [attr:tracetest.selected_spans.count <= 9]
"""

CHECKOUT_SHOP = """type: Test
spec:
  name: checkout-shop
  owner: checkout
  specs:
    - selector: span[name="GET /shop" service.name="checkout"]
      name: shop answers 2xx
      assertions: [attr:http.response.status_code < 300, 'attr:tracetest.span.status_code != "error"']
    - selector: span[name="GET /shop" service.name="checkout"]
      name: shop under 500ms
      assertions: [attr:tracetest.span.duration < 500ms]
"""

CHECKOUT_CART = """type: Test
spec:
  name: checkout-cart
  owner: checkout
  specs:
    - selector: span[name="GET /cart" service.name="checkout"]
      name: cart calls over https
      assertions: [attr:url.scheme = "https", attr:tracetest.selected_spans.count <= 9]
"""

TESTED = {"all": {"shop.yaml": SHOP}, "mix": {"checkout-shop.yaml": CHECKOUT_SHOP,
                                              "checkout-cart.yaml": CHECKOUT_CART}, "idle": {}}


def write_definitions(directory: Path, tested: str) -> Path:
    """Twenty definitions in ``directory``: ``tested`` (``all``, ``mix`` or ``idle``) says which apply."""
    applying = TESTED[tested]
    directory.mkdir(parents=True, exist_ok=True)
    for f in directory.glob("*.yaml"):
        f.unlink()
    for i in range(20 - len(applying)):
        (directory / f"orders-{i}.yaml").write_text(OTHER.format(i=i))
    for name, text in applying.items():
        (directory / name).write_text(text)
    return directory
