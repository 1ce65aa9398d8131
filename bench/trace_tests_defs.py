"""The 20 trace-test definitions of the ``full_trace_tests*`` benchmark scenarios (bench/run.py).

Nineteen test endpoints the reference load does not have (``POST /orders/1`` ...), as a service's test suite
mostly tests other endpoints than the one under load; with ``hits`` the twentieth tests the reference load's
own root span (``GET /shop``) and the payment service's calls, so every trace of the load is tested (the worst
case). (The reference load's parent ids point nowhere: its traces are flat, so no descendant selector.)
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


def write_definitions(directory: Path, hits: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for f in directory.glob("*.yaml"):
        f.unlink()
    for i in range(19 if hits else 20):
        (directory / f"orders-{i}.yaml").write_text(OTHER.format(i=i))
    if hits:
        (directory / "shop.yaml").write_text(SHOP)
    return directory
