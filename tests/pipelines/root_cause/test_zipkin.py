"""Real production traces (Zipkin's test data, ../shared/data/zipkin-traces, Apache-2.0) through the error
walk and the latency walk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace
from pipelines.root_cause import find_failures, latency_cause
from tests.pipelines.root_cause import ERROR, trace

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "zipkin-traces"
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


# -- the latency walk on real traces -----------------------------------------------------------------


def test_latency_walk_clips_a_skewed_server_span() -> None:
    # servicea's get calls serviceb's post; serviceb's clock is 62 ms behind: its SERVER span starts before
    # its parent. The SERVER copy stands for the id it shares with servicea's CLIENT span (as in the error
    # walk); clipped to [get's start, its own end] it leaves get 68.141 ms of its own.
    spans = load("skew.json")
    root = bytes.fromhex("bf396325699c84bf")
    f = latency_cause(to_trace(spans), root)
    assert f is not None and f.duration_ms == 99.411
    assert [(s.span, round(s.self_time_ms, 3)) for s in f.critical_path] == [
        ("servicea:get", 68.141), ("serviceb:post", 28.576), ("serviceb:async", 2.694)]
    assert (f.primary.service, f.primary.span_name, f.primary.depth) == ("servicea", "get", 0)


@pytest.mark.parametrize("name", ["smartthings-mobile-web-install.json", "smartthings-oauth-authorization.json",
                                  "simple-db-p6.json", "yelp.json", "messaging-kafka.json", "ascend.json"])
def test_latency_walk_accounts_for_every_root_span_nanosecond(name: str) -> None:
    spans = load(name)
    roots = [z for z in spans if not z.get("parentId")]
    for z in roots:
        t = to_trace(spans)
        f = latency_cause(t, bytes.fromhex(z["id"]), max_path_length=100_000)
        assert f is not None
        assert f.critical_path_length == len(f.critical_path) <= len(spans)
        assert sum(s.self_time_ms for s in f.critical_path) == pytest.approx(f.duration_ms)
        assert f.primary.self_time_ms == max(s.self_time_ms for s in f.critical_path)
        t.groups()  # the same from the decoded spans (Zipkin's shared ids send these there anyway)
        assert latency_cause(t, bytes.fromhex(z["id"]), max_path_length=100_000) == f
