"""Splitting a merged batch that exceeds ``send_batch_max_size``: the only code here that touches spans."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from collector import SpanBatch


def split_batch(batch: SpanBatch, max_spans: int) -> list[SpanBatch]:
    """Split ``batch`` (decoded once) into batches of ``max_spans`` spans, the last one possibly fewer.

    Span order is kept; each part repeats the resource and scope (with their schema URLs) of the spans
    it holds, and holds its own references to the batch's acks. A batch within the bound is returned
    as it is.
    """
    if max_spans <= 0:
        raise ValueError("max_spans must be positive")
    if batch.span_count <= max_spans:
        return [batch]
    parts: list[SpanBatch] = []
    out = ExportTraceServiceRequest()
    room = max_spans
    for rs in batch.request.resource_spans:
        out_rs: ResourceSpans | None = None
        for ss in rs.scope_spans:
            spans = ss.spans
            start, total = 0, len(spans)
            while start < total:
                take = min(room, total - start)
                if out_rs is None:
                    out_rs = out.resource_spans.add()
                    out_rs.resource.CopyFrom(rs.resource)
                    out_rs.schema_url = rs.schema_url
                out_ss: ScopeSpans = out_rs.scope_spans.add()
                out_ss.scope.CopyFrom(ss.scope)
                out_ss.schema_url = ss.schema_url
                out_ss.spans.extend(spans[start:start + take])
                start += take
                room -= take
                if room == 0:
                    parts.append(SpanBatch(request=out, span_count=max_spans, split_options=batch.split_options))
                    out = ExportTraceServiceRequest()
                    out_rs = None
                    room = max_spans
    if room < max_spans:
        parts.append(SpanBatch(request=out, span_count=max_spans - room, split_options=batch.split_options))
    for part in parts:
        part.with_acks_of(batch)
    batch.release()  # each part now holds its own references
    return parts
