"""The otlp receiver under arbitrary request bodies (hypothesis), over real gRPC and HTTP connections.

The contract: a protobuf request is accepted exactly when protobuf decodes it (gRPC OK / HTTP 200, else
INVALID_ARGUMENT / 400 with a message); an accepted request hands on exactly the spans with valid ids and
reports the others as rejected. A JSON request is accepted exactly when the OTLP/JSON codec decodes it.
Never an internal error, and the receiver keeps serving.

Found this way (a fixed case each in test_otlp_grpc.py): a span that repeats its trace id field, the last
one invalid, was passed on under its first trace id, while protobuf (and every later decoder) reads the last.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector import otlpjson
from collector.receivers.otlp import OTLPReceiver
from collector.validate import remove_invalid_spans
from tests.collector.receivers.test_otlp_support import TRACE_EXPORT, RecordingConsumer, receiver_config, running
from tests.collector.test_otlpjson_properties import otlp_like
from tests.collector.wire.support import edits, mutate, random_request

NETWORK = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

Setup = tuple[OTLPReceiver, RecordingConsumer]


@pytest.fixture
async def receiver() -> AsyncIterator[Setup]:
    """One receiver for all the examples of a test (both transports on 127.0.0.1, ports chosen at start)."""
    async with running(receiver_config(max_body=8 * 1024 * 1024)) as setup:
        yield setup


@st.composite
def protobuf_bodies(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or a real request (sometimes with invalid ids), mutated or not."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=300))
    base = random_request(random.Random(draw(st.integers(0, 2**32))), 0.1)
    if draw(st.booleans()):
        request = ExportTraceServiceRequest.FromString(base)
        spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        if spans:
            span = spans[draw(st.integers(0, len(spans) - 1))]
            setattr(span, draw(st.sampled_from(["trace_id", "span_id", "parent_span_id"])),
                    draw(st.sampled_from([b"", b"\x00" * 8, b"\x00" * 16, b"\x01" * 3])))
        base = request.SerializeToString()
    return mutate(base, draw(edits)) if draw(st.booleans()) else base


def protobuf_verdict(body: bytes) -> tuple[int, int] | None:
    """(spans handed on, spans rejected) when protobuf decodes ``body``; None when it refuses it."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        event("refused")
        return None
    check = remove_invalid_spans(request)
    event("some spans rejected" if check.rejected else "accepted")
    return check.accepted, check.rejected


def taken(consumer: RecordingConsumer) -> int:
    count = consumer.span_count
    consumer.batches.clear()
    return count


@NETWORK
@given(protobuf_bodies())
async def test_grpc_answers_as_protobuf_decides(receiver: Setup, body: bytes) -> None:
    rcv, consumer = receiver
    verdict = protobuf_verdict(body)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rcv.grpc_port}") as channel:
        call = channel.unary_unary(TRACE_EXPORT)  # raw bytes both ways
        try:
            answer: Any = await call(body, timeout=10)
        except grpc.aio.AioRpcError as e:
            assert verdict is None, f"refused a request protobuf decodes: {e.code()} {e.details()}"
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and e.details()
            assert taken(consumer) == 0
            return
    assert verdict is not None, f"accepted bytes protobuf refuses: {body.hex()}"
    response = ExportTraceServiceResponse.FromString(answer)
    assert (taken(consumer), response.partial_success.rejected_spans) == verdict


@NETWORK
@given(protobuf_bodies())
async def test_http_protobuf_answers_as_protobuf_decides(receiver: Setup, body: bytes) -> None:
    rcv, consumer = receiver
    verdict = protobuf_verdict(body)
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{rcv.http_port}/v1/traces", data=body,
            headers={"Content-Type": "application/x-protobuf"}) as resp:
        status, answer = resp.status, await resp.read()
    if verdict is None:
        assert status == 400, (status, answer)
        assert status_pb2.Status.FromString(answer).message
        assert taken(consumer) == 0
        return
    assert status == 200, (status, answer)
    response = ExportTraceServiceResponse.FromString(answer)
    assert (taken(consumer), response.partial_success.rejected_spans) == verdict


def json_verdict(body: bytes) -> tuple[int, int] | None:
    try:
        request = otlpjson.decode_request(body)
    except ValueError:
        event("refused")
        return None
    check = remove_invalid_spans(request)
    event("some spans rejected" if check.rejected else "accepted")
    return check.accepted, check.rejected


@NETWORK
@given(st.one_of(st.binary(max_size=200), otlp_like.map(lambda d: json.dumps(d).encode())))
async def test_http_json_answers_as_the_codec_decides(receiver: Setup, body: bytes) -> None:
    rcv, consumer = receiver
    verdict = json_verdict(body)
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{rcv.http_port}/v1/traces", data=body,
            headers={"Content-Type": "application/json"}) as resp:
        status, answer = resp.status, await resp.read()
    if verdict is None:
        assert status == 400, (status, answer)
        assert json.loads(answer)["message"]
        assert taken(consumer) == 0
        return
    assert status == 200, (status, answer)
    response = otlpjson.decode_response(answer)
    assert (taken(consumer), response.partial_success.rejected_spans) == verdict
