"""Building a request from stored span bytes."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.reference import ReferenceLoad
from collector.wire import build_request, build_request_within, split_by_trace


def test_a_split_request_builds_back_into_the_same_spans() -> None:
    """Groups with the same resource share one ResourceSpans; every span comes back as it was."""
    data = next(ReferenceLoad().requests(1))
    chunks = split_by_trace(data)
    built = build_request((c.resource_fields, c.scope_fields, [e for ts in c.by_trace.values() for e in ts.entries])
                          for c in chunks + chunks)
    original = ExportTraceServiceRequest.FromString(data)
    again = ExportTraceServiceRequest.FromString(built)
    assert len(again.resource_spans) == len(original.resource_spans)  # the doubled groups share them
    for rs, rs0 in zip(again.resource_spans, original.resource_spans, strict=True):
        assert rs.resource == rs0.resource
        assert [ss.scope for ss in rs.scope_spans] == [rs0.scope_spans[0].scope] * 2
        spans = sorted(s.SerializeToString() for ss in rs.scope_spans for s in ss.spans)
        assert spans == sorted([s.SerializeToString() for s in rs0.scope_spans[0].spans] * 2)


def test_build_within_a_limit_builds_only_what_fits() -> None:
    """The same bytes as build_request at or under the limit (its exact size), None over it; memoryview
    entries are taken as they are."""
    data = next(ReferenceLoad().requests(1))
    chunks = split_by_trace(data)

    def groups() -> list[tuple[bytes, bytes, list[bytes | bytearray | memoryview]]]:
        return [(c.resource_fields, c.scope_fields, [memoryview(e) for ts in c.by_trace.values() for e in ts.entries])
                for c in chunks]

    whole = build_request(groups())
    assert len(whole) == len(data)
    assert build_request_within(groups(), len(whole)) == whole
    assert build_request_within(groups(), -1) == whole
    assert build_request_within(groups(), len(whole) - 1) is None
