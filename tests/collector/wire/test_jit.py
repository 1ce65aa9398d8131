"""The compiled wire walk (numba) against the Python walk and exact decoding."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans as ScopeSpansMessage

from bench.reference import ReferenceLoad
from collector.wire import (
    InvalidSpanIds,
    ScopeChunk,
    SplitOptions,
    WireError,
    _split,
    frame,
    load_compiled,
    split_by_trace,
)
from tests.collector.wire.support import in_error, python_split, random_request
from tests.conftest import ROOT

ALL_HINTS = SplitOptions()


@pytest.fixture(autouse=True)
def _compiled() -> None:
    assert load_compiled(), "numba is part of the test environment: the compiled walk must load"


def compiled_split(data: bytes, monkeypatch: pytest.MonkeyPatch,
                   options: SplitOptions = ALL_HINTS) -> list[ScopeChunk]:
    """split_by_trace, failing the test if the compiled walk did not take the request."""
    taken: list[bool] = []
    real = _split.split_jit
    with monkeypatch.context() as m:
        m.setattr(_split, "split_jit", lambda *a: taken.append(True) or real(*a))
        m.setattr(_split, "split_np", lambda *a: pytest.fail("the compiled walk did not take the request"))
        chunks = split_by_trace(data, options)
    assert taken
    return chunks


def summary(chunks: list[ScopeChunk], exact_errors: bool) -> list[object]:
    """Like tests.collector.wire.test_split.summary; the compiled walk's maybe_error is exact (``exact_errors``)."""
    out: list[object] = []
    for c in chunks:
        traces = {}
        for tid, ts in c.by_trace.items():
            joined = b"".join(ts.entries)
            if exact_errors:
                assert ts.maybe_error == in_error(joined)
            traces[tid] = (joined, ts.count, ts.has_root, ts.start, ts.end)
        out.append((c.resource_fields, c.scope_fields, c.spans, traces))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_compiled_and_python_walks_agree(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(100 + seed)
    for i in range(60):
        data = random_request(rnd, trace_state=0.0 if i % 2 else 0.05)
        fast = compiled_split(data, monkeypatch)
        assert summary(fast, True) == summary(python_split(data, monkeypatch), False), i


def test_reference_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    for data in ReferenceLoad().requests(3):
        fast = compiled_split(data, monkeypatch)
        assert summary(fast, True) == summary(python_split(data, monkeypatch), False)
        assert sum(ts.maybe_error for c in fast for ts in c.by_trace.values()) == 5


def test_more_runs_than_the_first_call_has_room_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's first call has room for 2,048 runs; a request with more (single-span traces, or traces
    whose spans alternate) is walked again with room for all, and comes out as the Python walk's."""
    from collector.wire import _jit

    rnd = random.Random(5)
    ids = [rnd.randbytes(16) for _ in range(2500)]
    spans = [Span(trace_id=ids[i % len(ids)], span_id=rnd.randbytes(8), name="op",
                  start_time_unix_nano=1_700_000_000_000_000_000 + i, end_time_unix_nano=1_700_000_000_100_000_000,
                  status=Status(code=2 if i % 97 == 0 else 0)).SerializeToString() for i in range(3000)]
    data = _request(spans)
    calls: list[int] = []
    real = _jit._kernel
    assert real is not None
    monkeypatch.setattr(_jit, "_kernel", lambda *a: calls.append(a[4].shape[0]) or real(*a))
    fast = compiled_split(data, monkeypatch)
    assert calls == [_jit._RUNS, len(data) // _jit._MIN_SPAN + 1]
    assert sum(c.spans for c in fast) == 3000 and sum(len(c.by_trace) for c in fast) == 2500
    assert summary(fast, True) == summary(python_split(data, monkeypatch), False)


def _fields_of(span: Span) -> list[bytes]:
    """The span's top-level fields, each framed as protobuf writes it (to reorder them)."""
    out = []
    for fd, _ in span.ListFields():
        one = Span()
        if fd.is_repeated:
            for item in getattr(span, fd.name):
                getattr(one, fd.name).add().CopyFrom(item)
                out.append(one.SerializeToString())
                one = Span()
            continue
        field = getattr(span, fd.name)
        if fd.message_type is not None:
            getattr(one, fd.name).CopyFrom(field)
        else:
            setattr(one, fd.name, field)
        out.append(one.SerializeToString())
    return out


def _request(spans: list[bytes]) -> bytes:
    scope = frame(0x0A, frame(0x0A, b"lib")) + b"".join(frame(0x12, s) for s in spans)
    resource = frame(0x0A, KeyValue(key="service.name", value=AnyValue(string_value="svc")).SerializeToString())
    return frame(0x0A, frame(0x0A, resource) + frame(0x12, scope))


def test_any_field_order_is_read_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields in any order (other encoders, or a status before the attributes): read exactly, where the other
    walks rely on the canonical order (and an ERROR status being the span's last field)."""
    rnd = random.Random(7)
    spans = []
    for i in range(40):
        s = Span(trace_id=(i // 4 + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op",
                 kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=1000 + i, end_time_unix_nano=5000 - i)
        if i % 4:
            s.parent_span_id = (i).to_bytes(8, "big")
        s.attributes.append(KeyValue(key="k", value=AnyValue(string_value="v" * 200)))  # two-byte lengths
        if i % 5 == 0:
            s.status.code = Status.STATUS_CODE_ERROR
        if i % 7 == 0:
            s.attributes.append(KeyValue(key="error", value=AnyValue(bool_value=True)))
        s.flags = 0x301
        fields = _fields_of(s)
        rnd.shuffle(fields)
        spans.append(b"".join(fields))
    data = _request(spans)
    parsed = ExportTraceServiceRequest.FromString(data).resource_spans[0].scope_spans[0].spans
    fast = compiled_split(data, monkeypatch)
    assert summary(fast, True) == summary(python_split(data, monkeypatch), False)
    flagged = {tid for c in fast for tid, ts in c.by_trace.items() if ts.maybe_error}
    assert flagged == {s.trace_id for s in parsed if s.status.code == 2 or any(kv.key == "error"
                                                                               for kv in s.attributes)}
    (only,) = fast
    for tid, ts in only.by_trace.items():
        mine = [s for s in parsed if s.trace_id == tid]
        assert (ts.start, ts.end, ts.count) == (min(s.start_time_unix_nano for s in mine),
                                                 max(s.end_time_unix_nano for s in mine), len(mine))


TRUE = AnyValue(bool_value=True).SerializeToString()
FALSE = AnyValue(bool_value=False).SerializeToString()


def test_error_key_in_unusual_key_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-place read of a KeyValue covers key-then-short-value only; other layouts are read field by
    field, and the last key wins as in protobuf. Only a value that is true (bool, or "true" in any case)
    counts."""
    cases = {
        1: (frame(0x12, AnyValue(bool_value=True).SerializeToString()) + frame(0x0A, b"error"), True),  # value first
        2: (frame(0x0A, b"error") + frame(0x12, AnyValue(string_value="x" * 300).SerializeToString()), False),
        3: (frame(0x0A, b"other") + frame(0x0A, b"error") + frame(0x12, TRUE), True),  # two keys: the last wins
        4: (frame(0x0A, b"error") + frame(0x0A, b"other") + frame(0x12, TRUE), False),
        5: (frame(0x0A, b"errors") + frame(0x12, TRUE), False),
        6: (frame(0x0A, b"error") + frame(0x12, AnyValue(string_value="tRuE" + "x" * 0).SerializeToString()), True),
        7: (frame(0x0A, b"error") + frame(0x12, AnyValue(bool_value=False).SerializeToString()), False),
        8: (frame(0x0A, b"error"), False),  # no value
        # Two value fields merge, the last of the oneof wins: "maybe" (exact for the order written here).
        9: (frame(0x0A, b"error") + frame(0x12, FALSE) + frame(0x12, TRUE), True),
        10: (frame(0x0A, b"error") + frame(0x12, AnyValue(string_value="false").SerializeToString()), False),
    }
    spans = []
    for t, (kv, _) in cases.items():
        base = Span(trace_id=t.to_bytes(16, "big"), span_id=t.to_bytes(8, "big"), name="op",
                    start_time_unix_nano=1, end_time_unix_nano=2).SerializeToString()
        spans.append(base + frame(0x4A, kv))
    for key_hints in (True, False):
        for c in compiled_split(_request(spans), monkeypatch, SplitOptions(error_attribute=key_hints)):
            for tid, ts in c.by_trace.items():
                assert ts.maybe_error == (key_hints and cases[int.from_bytes(tid, "big")][1]), tid


def test_no_hints_flags_every_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = compiled_split(next(ReferenceLoad().requests(1)), monkeypatch, SplitOptions(error_hints=False))
    assert all(ts.maybe_error for c in chunks for ts in c.by_trace.values())


@pytest.mark.parametrize("bad", ["trace_zero", "span_zero", "parent_len", "trace_len"])
def test_invalid_ids_are_refused(bad: str) -> None:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(400):
        ss.spans.add(trace_id=(i // 5 + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op")
    victim = ss.spans[200]
    if bad == "trace_zero":
        victim.trace_id = bytes(16)
    elif bad == "span_zero":
        victim.span_id = bytes(8)
    elif bad == "parent_len":
        victim.parent_span_id = b"\x01\x02\x03"
    else:
        victim.trace_id = b"\x01" * 15
    with pytest.raises(InvalidSpanIds):
        split_by_trace(req.SerializeToString())


def test_mutated_requests_never_crash_and_agree_when_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random byte changes: the compiled walk reads only inside the bounds it checks (no crash), and on
    every mutant protobuf still accepts it gives what the Python walk gives (or defers to it)."""
    rnd = random.Random(3)
    base = [random_request(rnd, 0.0) for _ in range(6)] + list(ReferenceLoad().requests(2))
    agreed = 0
    for _ in range(400):
        data = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        raw = bytes(data)
        try:
            ExportTraceServiceRequest.FromString(raw)
        except DecodeError:
            valid = False
        else:
            valid = True
        try:
            fast: object = summary(split_by_trace(raw), False)
        except (WireError, DecodeError) as e:  # (the Python walk it defers to decodes odd spans)
            fast = type(e)
        if not valid:
            continue  # receivers refuse these with protobuf before any walk
        try:
            slow: object = summary(python_split(raw, monkeypatch), False)
        except WireError as e:
            slow = type(e)
        if slow is InvalidSpanIds or slow is WireError:
            continue  # the Python walk is stricter about container fields; receivers fall back to protobuf
        assert fast == slow
        agreed += 1
    assert agreed > 50


def test_off_switch() -> None:
    """``TRACETRIAGE_JIT=0``: numba is not even imported."""
    code = "import sys; from collector.wire import load_compiled; print(load_compiled(), 'numba' in sys.modules)"
    env = {**os.environ, "TRACETRIAGE_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_consecutive_scopes_of_one_scope_make_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """One ScopeSpans a span (some encoders write that): consecutive ScopeSpans with the same resource and scope
    bytes make one chunk, in every walk, each trace's spans in their order; another scope or resource between
    them keeps them apart."""
    req = ExportTraceServiceRequest()
    tids = [bytes([t + 1]) * 16 for t in range(3)]
    sid = iter(range(1, 1000))

    def add(rs: ResourceSpans, scope: str, tid: bytes, schema_url: str = "") -> None:
        ss = rs.scope_spans.add(schema_url=schema_url)
        ss.scope.name = scope
        ss.spans.add(trace_id=tid, span_id=next(sid).to_bytes(8, "big"), name=f"op{len(ss.spans)}")

    first = req.resource_spans.add()
    first.resource.attributes.add(key="service.name", value=AnyValue(string_value="a"))
    for t in (0, 1, 0, 2, 0):
        add(first, "lib", tids[t])  # one chunk: three traces
    add(first, "lib", tids[1], schema_url="https://x")  # another scope (its schema_url): a chunk of its own
    add(first, "lib", tids[1], schema_url="https://x")
    add(first, "other", tids[0])
    add(first, "lib", tids[0])
    again = req.resource_spans.add()  # the same resource again: merged with the chunk before it
    again.resource.CopyFrom(first.resource)
    add(again, "lib", tids[0])
    data = req.SerializeToString()

    fast = compiled_split(data, monkeypatch)
    assert summary(fast, True) == summary(python_split(data, monkeypatch), False)
    assert [(c.spans, len(c.by_trace)) for c in fast] == [(5, 3), (2, 1), (1, 1), (2, 1)]
    assert fast[0].by_trace[tids[0]].count == 3 and len(fast[0].by_trace[tids[0]].entries) == 3
    ids = [int.from_bytes(s.span_id, "big") for s in
           ScopeSpansMessage.FromString(b"".join(fast[0].by_trace[tids[0]].entries)).spans]
    assert ids == [1, 3, 5]
    assert ScopeSpansMessage.FromString(fast[1].scope_fields).schema_url == "https://x"
    assert sum(c.spans for c in fast) == 10
