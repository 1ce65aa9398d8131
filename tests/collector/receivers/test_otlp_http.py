"""The otlp receiver over HTTP: aiohttp client and the OpenTelemetry SDK exporter."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace.export import SpanExportResult

from collector import otlpjson
from collector.receivers.otlp import OTLPReceiver
from collector.telemetry import Telemetry
from tests.collector.receivers.test_otlp_grpc import accepted, refused, sdk_spans
from tests.collector.receivers.test_otlp_support import RecordingConsumer, make_request, receiver_config, running

PROTO = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
MAX_BODY = 1024 * 1024

HTTPSetup = tuple[OTLPReceiver, RecordingConsumer, aiohttp.ClientSession, str, Telemetry]


@pytest.fixture
async def http_setup() -> AsyncIterator[HTTPSetup]:
    telemetry = Telemetry()
    async with (
        running(receiver_config(grpc=False, max_body=MAX_BODY), telemetry=telemetry) as (rcv, consumer),
        aiohttp.ClientSession() as session,
    ):
        yield rcv, consumer, session, f"http://127.0.0.1:{rcv.http_port}", telemetry


async def post(session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    async with session.post(url, data=body, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def assert_still_serving(session: aiohttp.ClientSession, base: str, consumer: RecordingConsumer) -> None:
    before = consumer.span_count
    consumer.error = None
    status, _, _ = await post(session, base + "/v1/traces", make_request(2).SerializeToString(), PROTO)
    assert status == 200
    assert consumer.span_count == before + 2


def proto_status(body: bytes) -> status_pb2.Status:
    return status_pb2.Status.FromString(body)


async def test_sdk_exporter_protobuf_plain_and_gzip(http_setup: HTTPSetup) -> None:
    _, consumer, _, base, telemetry = http_setup
    spans = sdk_spans(4)

    def send(compression: Compression) -> SpanExportResult:
        exporter = OTLPSpanExporter(endpoint=base + "/v1/traces", compression=compression)
        try:
            return exporter.export(spans)
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]

    assert await asyncio.to_thread(send, Compression.NoCompression) is SpanExportResult.SUCCESS
    assert await asyncio.to_thread(send, Compression.Gzip) is SpanExportResult.SUCCESS
    assert await asyncio.to_thread(send, Compression.Deflate) is SpanExportResult.SUCCESS
    assert consumer.span_count == 12
    assert accepted(telemetry, "http") == 12


async def test_protobuf_bytes_passed_on_unchanged(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    payload = make_request(10).SerializeToString()
    status, headers, body = await post(session, base + "/v1/traces", payload, PROTO)
    assert status == 200
    assert headers["Content-Type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    assert consumer.batches[0].to_bytes() == payload


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", "identity"])
async def test_content_encodings(http_setup: HTTPSetup, encoding: str) -> None:
    _, consumer, session, base, _ = http_setup
    payload = make_request(5).SerializeToString()
    header = encoding
    if encoding == "gzip":
        body = gzip.compress(payload)
    elif encoding == "deflate":
        body = zlib.compress(payload)
    elif encoding == "deflate-raw":
        c = zlib.compressobj(wbits=-15)
        body, header = c.compress(payload) + c.flush(), "deflate"
    else:
        body = payload
    status, _, _ = await post(session, base + "/v1/traces", body, {**PROTO, "Content-Encoding": header})
    assert status == 200
    assert consumer.batches[0].to_bytes() == payload


async def test_json_request(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    doc = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
            "someFutureField": {"x": 1},
            "scopeSpans": [{
                "scope": {"name": "lib"},
                "spans": [
                    {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174",
                     "parentSpanId": "", "name": "a", "kind": 2,
                     "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
                     "attributes": [{"key": "n", "value": {"intValue": "42"}}],
                     "status": {"code": 2, "message": "bad"}, "unknownThing": [1, 2]},
                    {"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "0000000000000001",
                     "parent_span_id": "eee19b7ec3c1b174", "name": "b", "kind": "SPAN_KIND_CLIENT",
                     "links": [{"traceId": "00000000000000000000000000000002", "spanId": "0000000000000003"}]},
                ],
            }],
        }],
    }
    status, headers, body = await post(
        session, base + "/v1/traces", json.dumps(doc).encode(), {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {}
    spans = consumer.batches[0].request.resource_spans[0].scope_spans[0].spans
    assert spans[0].trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert spans[0].span_id == bytes.fromhex("eee19b7ec3c1b174") and spans[0].parent_span_id == b""
    assert spans[0].kind == Span.SPAN_KIND_SERVER
    assert spans[0].start_time_unix_nano == 1544712660000000000
    assert spans[0].end_time_unix_nano == 1544712661000000000
    assert spans[0].attributes[0].value.int_value == 42
    assert spans[0].status.code == 2
    assert spans[1].kind == Span.SPAN_KIND_CLIENT and spans[1].parent_span_id == spans[0].span_id
    assert spans[1].links[0].span_id == (3).to_bytes(8, "big")


async def test_json_decoder_memos_in_metrics(http_setup: HTTPSetup) -> None:
    """The OTLP/JSON decoder's memos are bounded and their entries are in /metrics: an attribute never seen
    before adds one."""
    _, consumer, session, base, telemetry = http_setup

    def gauge(name: str, memo: str) -> float:
        value = telemetry.registry.get_sample_value(name, {"memo": memo})
        assert value is not None, name
        return value

    before = gauge("tracetriage_otlpjson_memo_entries", "attributes")
    text = f"unseen-{time.monotonic_ns()}"
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "memo",
        "attributes": [{"key": "k", "value": {"stringValue": text}}]}]}]}]}
    status, _, body = await post(session, base + "/v1/traces", json.dumps(doc).encode(), JSON)
    assert status == 200, body
    assert consumer.batches[-1].request.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.string_value \
        == text
    after = gauge("tracetriage_otlpjson_memo_entries", "attributes")
    assert after == before + 1 or after == 1  # (1: that memo was full and started again)
    for memo in ("attributes", "messages", "plans"):
        held, most = gauge("tracetriage_otlpjson_memo_entries", memo), gauge("tracetriage_otlpjson_memo_capacity", memo)
        assert 0 <= held <= most and most > 0, (memo, held, most)
    assert gauge("tracetriage_otlpjson_memo_capacity", "attributes") % otlpjson.MEMO_SIZE == 0


async def test_json_partial_success(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, telemetry = http_setup
    req = make_request(3)
    req.resource_spans[0].scope_spans[0].spans[2].trace_id = bytes(16)
    status, _, body = await post(session, base + "/v1/traces", otlpjson.encode_request(req), JSON)
    assert status == 200
    doc = json.loads(body)
    assert int(doc["partialSuccess"]["rejectedSpans"]) == 1
    assert "spans[2]: traceId is all zero" in doc["partialSuccess"]["errorMessage"]
    assert consumer.span_count == 2
    assert refused(telemetry, "http") == 1 and accepted(telemetry, "http") == 2


async def test_protobuf_partial_success(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    req = make_request(3)
    req.resource_spans[0].scope_spans[0].spans[0].span_id = bytes(8)
    status, _, body = await post(session, base + "/v1/traces", req.SerializeToString(), PROTO)
    assert status == 200
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 1
    assert "spanId is all zero" in response.partial_success.error_message
    assert [s.name for s in consumer.batches[0].request.resource_spans[0].scope_spans[0].spans] == ["op1", "op2"]


async def test_malformed_protobuf_400(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    status, headers, body = await post(session, base + "/v1/traces", b"\x0a\x05ab", PROTO)
    assert status == 400
    assert headers["Content-Type"] == "application/x-protobuf"
    st = proto_status(body)
    assert st.code == code_pb2.INVALID_ARGUMENT
    assert "cannot decode protobuf ExportTraceServiceRequest" in st.message
    assert consumer.calls == 0
    await assert_still_serving(session, base, consumer)


@pytest.mark.parametrize(("body", "needle"), [
    (b"{not json", "invalid JSON"),
    (b"[]", "expected a JSON object"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}',
     "resourceSpans[0].scopeSpans[0].spans[0].traceId: invalid hex 'xyz'"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}', "startTimeUnixNano"),
    # What msgspec refuses and json.loads reads: json_format's answer, a 400 naming the field.
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"intValue":'
     b'18446744073709551616}}]}]}]}]}', "intValue: Value out of range: 18446744073709551616"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\\ud800"}]}]}]}', "name: Unpaired surrogate"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"doubleValue":NaN}}]}]}]}]}',
     "Couldn't parse NaN"),
])
async def test_malformed_json_400(http_setup: HTTPSetup, body: bytes, needle: str) -> None:
    _, consumer, session, base, _ = http_setup
    status, headers, answer = await post(session, base + "/v1/traces", body, JSON)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(answer)
    assert doc["code"] == code_pb2.INVALID_ARGUMENT
    assert needle in doc["message"]
    await assert_still_serving(session, base, consumer)


async def test_bad_compressed_body_400(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    for body in (b"not gzip at all", gzip.compress(make_request(50).SerializeToString())[:-8]):
        status, _, answer = await post(session, base + "/v1/traces", body, {**PROTO, "Content-Encoding": "gzip"})
        assert status == 400
        assert "invalid gzip body" in proto_status(answer).message
    await assert_still_serving(session, base, consumer)


async def test_unsupported_content_encoding_400(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    status, _, body = await post(session, base + "/v1/traces", b"x", {**JSON, "Content-Encoding": "br"})
    assert status == 400
    assert "unsupported Content-Encoding 'br'" in json.loads(body)["message"]
    await assert_still_serving(session, base, consumer)


async def test_body_too_large_413(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    status, _, body = await post(session, base + "/v1/traces", io.BytesIO(bytes(MAX_BODY + 1)), PROTO)
    assert status == 413
    assert "larger than" in proto_status(body).message

    async def chunks() -> AsyncIterator[bytes]:  # chunked transfer: no Content-Length to check up front
        for _ in range(20):
            yield bytes(MAX_BODY // 10)

    status, _, body = await post(session, base + "/v1/traces", chunks(), PROTO)
    assert status == 413
    assert consumer.calls == 0
    await assert_still_serving(session, base, consumer)


async def test_gzip_bomb_refused_fast_with_small_memory(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush()  # 64 MiB inflated
    assert len(bomb) < 200 * 1024
    tracemalloc.start()
    try:
        t0 = time.monotonic()
        status, _, body = await post(session, base + "/v1/traces", bomb, {**PROTO, "Content-Encoding": "gzip"})
        elapsed = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413
    assert "after decompression" in proto_status(body).message
    assert elapsed < 2.0
    assert peak < 3 * MAX_BODY + len(bomb) + 2 * 1024 * 1024, f"peak traced memory {peak} bytes"
    assert consumer.calls == 0
    await assert_still_serving(session, base, consumer)


async def test_unsupported_content_type_415(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    status, _, body = await post(session, base + "/v1/traces", b"hello", {"Content-Type": "text/plain"})
    assert status == 415
    assert b"application/x-protobuf" in body
    await assert_still_serving(session, base, consumer)


async def test_unknown_path_404(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    status, _, _ = await post(session, base + "/v2/traces", make_request(1).SerializeToString(), PROTO)
    assert status == 404
    assert consumer.calls == 0


@pytest.mark.parametrize("path", ["/v1/metrics", "/v1/logs"])
async def test_metrics_and_logs_404(http_setup: HTTPSetup, path: str) -> None:
    _, consumer, session, base, _ = http_setup
    status, _, body = await post(session, base + path, b"{}", JSON)
    assert status == 404
    assert "accepts traces only" in json.loads(body)["message"]
    await assert_still_serving(session, base, consumer)


async def test_wrong_method_405(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    async with session.get(base + "/v1/traces") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
    await assert_still_serving(session, base, consumer)


async def test_retriable_refusal_503_retry_after(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, telemetry = http_setup
    consumer.refuse(retriable=True, retry_after=2.2)
    status, headers, body = await post(session, base + "/v1/traces", make_request(3).SerializeToString(), PROTO)
    assert status == 503
    assert headers["Retry-After"] == "3"
    st = proto_status(body)
    assert st.code == code_pb2.UNAVAILABLE and st.message == "pipeline full"
    assert refused(telemetry, "http") == 3
    consumer.refuse(retriable=True)
    status, headers, body = await post(session, base + "/v1/traces", otlpjson.encode_request(make_request(1)), JSON)
    assert status == 503 and headers["Retry-After"] == "1"
    assert json.loads(body) == {"code": code_pb2.UNAVAILABLE, "message": "pipeline full"}
    await assert_still_serving(session, base, consumer)


async def test_permanent_refusal_400(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    consumer.refuse(retriable=False)
    status, _, body = await post(session, base + "/v1/traces", make_request(1).SerializeToString(), PROTO)
    assert status == 400
    assert proto_status(body).message == "rejected by backend"
    await assert_still_serving(session, base, consumer)


async def test_unexpected_error_500(http_setup: HTTPSetup, caplog: pytest.LogCaptureFixture) -> None:
    _, consumer, session, base, _ = http_setup
    consumer.error = KeyError("boom in /var/lib/tracetriage/queue")
    status, _, body = await post(session, base + "/v1/traces", make_request(1).SerializeToString(), PROTO)
    assert status == 500
    assert proto_status(body).message == "internal error (logged by the collector)"  # nothing internal to clients
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    await assert_still_serving(session, base, consumer)


async def test_empty_request_accepted_not_passed_on(http_setup: HTTPSetup) -> None:
    _, consumer, session, base, _ = http_setup
    status, _, _ = await post(session, base + "/v1/traces", b"", PROTO)
    assert status == 200
    status, _, body = await post(session, base + "/v1/traces", b'{"resourceSpans":[]}', JSON)
    assert status == 200 and json.loads(body) == {}
    assert consumer.calls == 0


async def test_custom_traces_path() -> None:
    from collector.receivers.otlp import HTTPConfig, OTLPReceiverConfig, ProtocolsConfig

    cfg = OTLPReceiverConfig(protocols=ProtocolsConfig(
        http=HTTPConfig(endpoint="127.0.0.1:0", traces_url_path="custom/traces")))
    async with running(cfg) as (rcv, consumer), aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{rcv.http_port}"
        status, _, _ = await post(session, base + "/custom/traces", make_request(1).SerializeToString(), PROTO)
        assert status == 200
        status, _, _ = await post(session, base + "/v1/traces", make_request(1).SerializeToString(), PROTO)
        assert status == 404
    assert consumer.span_count == 1


async def test_shutdown_lets_in_flight_request_finish() -> None:
    consumer = RecordingConsumer()
    consumer.gate, consumer.entered = asyncio.Event(), asyncio.Event()
    async with running(receiver_config(grpc=False), consumer) as (rcv, _), aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{rcv.http_port}/v1/traces"
        call = asyncio.create_task(post(session, url, make_request(2).SerializeToString(), PROTO))
        await asyncio.wait_for(consumer.entered.wait(), 5)
        stopping = asyncio.create_task(rcv.shutdown())
        await asyncio.sleep(0.05)
        with pytest.raises(aiohttp.ClientConnectionError):  # no new connections once shutdown began
            async with aiohttp.ClientSession() as other:
                await post(other, url, make_request(1).SerializeToString(), PROTO)
        consumer.gate.set()
        await asyncio.wait_for(stopping, 5)
        status, _, _ = await call
    assert status == 200
    assert consumer.span_count == 2
