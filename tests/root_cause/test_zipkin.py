"""Real production traces (Zipkin's test data, ../shared/data/zipkin-traces, Apache-2.0) through the walk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace
from pipelines.root_cause import find_failures
from tests.root_cause import ERROR, trace

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "zipkin-traces"
KINDS = {"CLIENT": Span.SPAN_KIND_CLIENT, "SERVER": Span.SPAN_KIND_SERVER,
         "PRODUCER": Span.SPAN_KIND_PRODUCER, "CONSUMER": Span.SPAN_KIND_CONSUMER}


def load(name: str) -> list[dict[str, Any]]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data


def to_trace(spans: list[dict[str, Any]], error_ids: set[str] | None = None) -> Trace:
    """Zipkin v2 -> OTLP: service -> resource, kind, tags -> string attributes; ``error_ids``: status ERROR."""
    by_service: dict[str, list[Span]] = {}
    for z in spans:
        start = int(z.get("timestamp", 0)) * 1000
        s = Span(
            trace_id=bytes.fromhex(z["traceId"].rjust(32, "0")), span_id=bytes.fromhex(z["id"]),
            parent_span_id=bytes.fromhex(z["parentId"]) if z.get("parentId") else b"", name=z.get("name", ""),
            kind=KINDS.get(z.get("kind", ""), Span.SPAN_KIND_INTERNAL),
            start_time_unix_nano=start, end_time_unix_nano=start + int(z.get("duration", 0)) * 1000,
        )
        for k, v in z.get("tags", {}).items():
            s.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
        if error_ids and z["id"] in error_ids:
            s.status.code = ERROR
        by_service.setdefault(z["localEndpoint"].get("serviceName", ""), []).append(s)
    return trace(*by_service.items())


def test_error_tags_with_http_codes_are_not_errors() -> None:
    # Two spans tagged error=404 while the root succeeds: `error` is not "true", nothing is in error.
    assert find_failures(to_trace(load("smartthings-mobile-web-install.json"))).failures == []


def test_failure_marked_along_the_path_finds_the_server_side() -> None:
    spans = load("smartthings-oauth-authorization.json")
    parents = {z["id"]: z.get("parentId") for z in spans}
    error_ids: set[str] = set()
    for z in spans:
        if "error" in z.get("tags", {}):  # the span and every ancestor fail
            sid: str | None = z["id"]
            while sid and sid not in error_ids:
                error_ids.add(sid)
                sid = parents.get(sid)
    (failure,) = find_failures(to_trace(spans, error_ids)).failures
    cause = failure.primary
    # Client (stlogin) and server (auth) share the span id: the server side is the root cause.
    assert (cause.service, cause.span_name, cause.blamed_callee) == ("auth", "post /sso/authenticate", False)
    assert cause.path[-1] == "auth:post /sso/authenticate" and len(cause.path) == cause.depth + 1
    assert failure.root_cause_count == 1
