"""A small shop made with the OpenTelemetry SDK, one tracer provider per service, calls linked by context:

    frontend (SERVER "GET /checkout", a root)
      -> CLIENT "POST /orders"       -> orders (SERVER "POST /orders")
           orders -> CLIENT "GET /stock" -> inventory (SERVER "GET /stock")
                inventory -> CLIENT "SELECT stock"  (db.name=stockdb, db.system=postgresql: a database edge)
                inventory -> CLIENT "GET cart"      (db.system=redis only: the cache is not instrumented)
      -> CLIENT "POST /legacy"       (no server answers, no peer attribute: unpaired)

Orders fails (status ERROR on its server span) in the traces whose index is in ``failing``.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICES = ("frontend", "orders", "inventory")


def shop_traces(n: int, failing: Iterable[int] = (), legacy: bool = True, team_of: dict[str, str] | None = None
                ) -> list[ReadableSpan]:
    failing = set(failing)
    memory = InMemorySpanExporter()
    tracers = {}
    providers = []
    for service in SERVICES:
        attrs = {"service.name": service}
        if team_of and service in team_of:
            attrs["service.owner"] = team_of[service]
        provider = TracerProvider(resource=Resource.create(attrs))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        providers.append(provider)
        tracers[service] = provider.get_tracer("shop")
    fe, orders, inv = tracers["frontend"], tracers["orders"], tracers["inventory"]
    for i in range(n):
        with fe.start_as_current_span("GET /checkout", kind=SpanKind.SERVER):
            with fe.start_as_current_span("POST /orders", kind=SpanKind.CLIENT,
                                          attributes={"peer.service": "orders"}) as call:
                ctx = trace.set_span_in_context(call)
                with orders.start_as_current_span("POST /orders", kind=SpanKind.SERVER, context=ctx) as srv:
                    with orders.start_as_current_span("GET /stock", kind=SpanKind.CLIENT) as call2:
                        ctx2 = trace.set_span_in_context(call2)
                        with inv.start_as_current_span("GET /stock", kind=SpanKind.SERVER, context=ctx2):
                            with inv.start_as_current_span("SELECT stock", kind=SpanKind.CLIENT, attributes={
                                    "db.name": "stockdb", "db.system": "postgresql"}):
                                pass
                            with inv.start_as_current_span("GET cart", kind=SpanKind.CLIENT,
                                                           attributes={"db.system": "redis"}):
                                pass
                    if i in failing:
                        srv.set_status(Status(StatusCode.ERROR, "out of stock"))
            if legacy:
                with fe.start_as_current_span("POST /legacy", kind=SpanKind.CLIENT):
                    pass
    for p in providers:
        p.shutdown()
    return list(memory.get_finished_spans())
