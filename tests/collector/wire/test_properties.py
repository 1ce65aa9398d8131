"""The wire code under arbitrary bytes and mutated real requests (hypothesis).

The contracts: :func:`split_by_trace` raises nothing but :class:`WireError` (``InvalidSpanIds`` is one); when it
takes bytes that protobuf accepts, it hands on exactly the spans protobuf decodes, each under its own trace
id, and all three walks (compiled, vectorized, Python) agree; ``InvalidSpanIds`` only for a request with a
span that the protobuf id check rejects. The compiled check (:func:`certain_span_count`) is "certain" only about
bytes protobuf accepts, and then counts the spans protobuf decodes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from collector.validate import remove_invalid_spans
from collector.wire import (
    InvalidSpanIds,
    ScopeChunk,
    WireError,
    _split,
    certain_span_count,
    iter_fields,
    load_compiled,
    split_by_trace,
)
from tests.collector.wire.support import edits, mutate, python_split, random_request

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# (resource, scope, span) of every span, each as deterministic protobuf bytes, counted.
SpanSet = Counter[tuple[bytes, bytes, bytes]]


@pytest.fixture(autouse=True, scope="module")
def _compiled() -> None:
    assert load_compiled(), "numba is part of the test environment"


def protobuf_decode(data: bytes) -> ExportTraceServiceRequest | None:
    try:
        return ExportTraceServiceRequest.FromString(data)
    except DecodeError:
        return None


def spans_of_request(request: ExportTraceServiceRequest) -> SpanSet:
    out: SpanSet = Counter()
    for rs in request.resource_spans:
        resource = rs.resource.SerializeToString(deterministic=True)
        for ss in rs.scope_spans:
            scope = ss.scope.SerializeToString(deterministic=True)
            for span in ss.spans:
                out[resource, scope, span.SerializeToString(deterministic=True)] += 1
    return out


def spans_of_split(chunks: list[ScopeChunk]) -> SpanSet:
    out: SpanSet = Counter()
    for chunk in chunks:
        resource = ResourceSpans.FromString(chunk.resource_fields).resource.SerializeToString(deterministic=True)
        scope = ScopeSpans.FromString(chunk.scope_fields).scope.SerializeToString(deterministic=True)
        count = 0
        for trace_id, ts in chunk.by_trace.items():
            spans = ScopeSpans.FromString(b"".join(ts.entries)).spans
            assert len(spans) == ts.count
            count += ts.count
            for span in spans:
                assert span.trace_id == trace_id
                out[resource, scope, span.SerializeToString(deterministic=True)] += 1
        assert count == chunk.spans
    return out


def attempt(split: Callable[[], list[ScopeChunk]]) -> list[ScopeChunk] | WireError:
    try:
        return split()
    except WireError as e:
        assert str(e), "a wire error says what is wrong"
        return e


def check(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every contract of the module docstring, on one input."""
    request = protobuf_decode(data)
    certain = certain_span_count(data)
    if certain is not None:
        assert request is not None, f"certain about bytes protobuf refuses: {data.hex()}"
        assert certain == sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    result = attempt(lambda: split_by_trace(data))  # the walk the receivers use (compiled, here)
    in_python = attempt(lambda: python_split(data, monkeypatch))
    if request is None:
        return  # the receivers refuse it before the split: any answer is fine, but no other exception
    rejected = remove_invalid_spans(ExportTraceServiceRequest.FromString(data)).rejected
    for walked in (result, in_python):
        if isinstance(walked, InvalidSpanIds):
            assert rejected > 0, "InvalidSpanIds for a request whose ids protobuf finds valid"
        elif not isinstance(walked, WireError):
            assert rejected == 0, "a request with invalid ids went through the walk"
            assert spans_of_split(walked) == spans_of_request(request)


@FAST
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    check(data, monkeypatch)


@FAST
@given(seed=st.integers(0, 2**32), trace_state=st.floats(0, 0.5), changes=edits)
def test_mutated_requests(seed: int, trace_state: float, changes: list[tuple[str, float, int]],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    base = random_request(random.Random(seed), trace_state)
    check(base, monkeypatch)
    check(mutate(base, changes), monkeypatch)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), changes=edits)
def test_mutated_large_requests_take_the_vectorized_walk(seed: int, changes: list[tuple[str, float, int]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests of at least MIN_BYTES (the vectorized walk's size), mutated."""
    rnd = random.Random(seed)
    base = b"".join(random_request(rnd, 0.0) for _ in range(3))
    while len(base) < _split.MIN_BYTES:
        base += random_request(rnd, 0.0)
    check(mutate(base, changes), monkeypatch)


def test_the_span_comparison_can_fail() -> None:
    """The property's own check notices a lost span and a span filed under another trace."""
    rnd = random.Random(3)
    data = random_request(rnd, 0.0)
    while not split_by_trace(data):
        data = random_request(rnd, 0.0)
    spans = spans_of_request(ExportTraceServiceRequest.FromString(data))
    chunks = split_by_trace(data)
    assert spans_of_split(chunks) == spans
    chunk = chunks[0]
    trace_id, ts = next(iter(chunk.by_trace.items()))
    joined = b"".join(ts.entries)
    *_, (_, last, _, _) = iter_fields(joined, 0, len(joined))
    ts.entries, ts.count, chunk.spans = [joined[:last]], ts.count - 1, chunk.spans - 1  # one span lost
    assert spans_of_split(chunks) != spans
    ts.entries, ts.count, chunk.spans = [joined], ts.count + 1, chunk.spans + 1
    assert spans_of_split(chunks) == spans
    chunk.by_trace[bytes(16)] = chunk.by_trace.pop(trace_id)  # filed under another trace id
    with pytest.raises(AssertionError):
        spans_of_split(chunks)
