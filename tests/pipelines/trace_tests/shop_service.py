"""A small HTTP service instrumented with the OpenTelemetry Python SDK, for the end-to-end trace-test runs.

``python -m tests.pipelines.trace_tests.shop_service PORT OTLP_GRPC_ENDPOINT`` serves ``POST /checkout``: a SERVER
span continuing the caller's ``traceparent``, a database CLIENT span and a payment rpc CLIENT span below it,
exported over OTLP/gRPC by the SDK's own exporter. ``/checkout?fail=1`` makes the payment call fail (status
ERROR, response 502). It prints "ready" once serving and stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qs, urlparse

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def serve(port: int, endpoint: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-frontend"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("shop")
    propagator = TraceContextTextMapPropagator()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urlparse(self.path)
            fail = parse_qs(url.query).get("fail") == ["1"]
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            ctx = propagator.extract({k.lower(): v for k, v in self.headers.items()})
            with tracer.start_as_current_span("POST /checkout", context=ctx, kind=SpanKind.SERVER, attributes={
                    "http.request.method": "POST", "http.route": "/checkout"}) as server:
                with tracer.start_as_current_span("SELECT shop.orders", kind=SpanKind.CLIENT, attributes={
                        "db.system": "postgresql", "db.statement": "SELECT * FROM orders WHERE id = $1"}):
                    time.sleep(0.002)
                with tracer.start_as_current_span("payments.Charge/Pay", kind=SpanKind.CLIENT, attributes={
                        "rpc.system": "grpc", "rpc.service": "payments.Charge", "peer.service": "payments"}) as pay:
                    if fail:
                        pay.set_status(Status(StatusCode.ERROR, "card declined"))
                status = 502 if fail else 200
                server.set_attribute("http.response.status_code", status)
                body = json.dumps({"order": 42} if not fail else {"error": "payment failed"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        provider.shutdown()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
