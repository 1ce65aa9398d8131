"""A small gRPC service instrumented with the OpenTelemetry Python SDK, for the gRPC trigger runs.

``python -m tests.pipelines.trace_tests.orders_service PORT OTLP_GRPC_ENDPOINT PROTO`` compiles ``PROTO`` (the
``shop.v1.Orders`` service of the tests) with protoc, serves its unary ``Place`` on 127.0.0.1:PORT through a
generic handler (no generated code) and exports over OTLP/gRPC with the SDK's own exporter: a SERVER span
continuing the caller's ``traceparent`` metadata (W3C propagator), and a database CLIENT span below it. An
unknown item (``"item": ""``) ends the call with NOT_FOUND; ``"item": "slow"`` answers after 10 s (or when the
caller gives up). It prints "ready" once serving and stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from grpc_tools import protoc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def load(proto: Path) -> descriptor_pool.DescriptorPool:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        include = Path(protoc.__file__).parent / "_proto"
        code = protoc.main(["protoc", f"--descriptor_set_out={out}", "--include_imports", f"-I{proto.parent}",
                            f"-I{include}", str(proto)])
        if code != 0:
            raise SystemExit(f"protoc failed on {proto}")
        fds = FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.AddSerializedFile(f.SerializeToString())
    return pool


def serve(port: int, endpoint: str, proto: Path) -> None:
    pool = load(proto)
    request_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.v1.PlaceOrderRequest"))
    reply_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.v1.PlaceOrderReply"))
    provider = TracerProvider(resource=Resource.create({"service.name": "orders"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("orders")
    propagator = TraceContextTextMapPropagator()

    def place(request: Any, context: grpc.ServicerContext) -> Any:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        ctx = propagator.extract(metadata)
        context.send_initial_metadata((("x-shop-region", "eu-west"),))
        with tracer.start_as_current_span("shop.v1.Orders/Place", context=ctx, kind=SpanKind.SERVER, attributes={
                "rpc.system": "grpc", "rpc.service": "shop.v1.Orders", "rpc.method": "Place",
                "app.tenant": metadata.get("tenant", ""), "app.quantity": request.quantity}) as span:
            with tracer.start_as_current_span("SELECT shop.stock", kind=SpanKind.CLIENT, attributes={
                    "db.system": "postgresql", "db.statement": "SELECT qty FROM stock WHERE item = $1"}):
                time.sleep(0.002)
            if request.item == "slow":  # longer than the caller's --timeout: until the caller gives up
                end = time.monotonic() + 10
                while context.is_active() and time.monotonic() < end:
                    time.sleep(0.05)
            if not request.item:
                span.set_status(Status(StatusCode.ERROR, "no such item"))
                span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.NOT_FOUND.value[0])
                context.abort(grpc.StatusCode.NOT_FOUND, "no item named ''")
            span.set_attribute("rpc.grpc.status_code", 0)
            reply = reply_class(order_id=42, status=f"placed {request.quantity} x {request.item}")
            reply.placed_at.seconds = 1_700_000_000  # a message of this pool's google.protobuf.Timestamp
            return reply

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("shop.v1.Orders", {
        "Place": grpc.unary_unary_rpc_method_handler(place, request_deserializer=request_class.FromString,
                                                     response_serializer=lambda m: m.SerializeToString())}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=None)
        provider.shutdown()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
