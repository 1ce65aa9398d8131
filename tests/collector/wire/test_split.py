"""The wire split: the vectorized walk (large requests) and the Python walk give the same result on any
request, and both refuse invalid ids."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.reference import ReferenceLoad
from collector.wire import InvalidSpanIds, ScopeChunk, SplitOptions, WireError, _jit, _split, split_by_trace
from tests.collector.wire.support import in_error, python_split, random_request


@pytest.fixture(autouse=True)
def _no_compiled_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the vectorized and the Python walks (the compiled one: test_jit.py)."""
    monkeypatch.setattr(_jit, "_kernel", None)


def summary(chunks: list[ScopeChunk]) -> list[object]:
    out: list[object] = []
    for c in chunks:
        traces = {}
        for tid, ts in c.by_trace.items():
            joined = b"".join(ts.entries)
            # maybe_error may say yes wrongly, never no wrongly.
            assert ts.maybe_error or not in_error(joined)
            traces[tid] = (joined, ts.count, ts.has_root, ts.start, ts.end, ts.maybe_error)
        out.append((c.resource_fields, c.scope_fields, c.spans, traces))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_vectorized_and_python_walks_agree(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    used = 0
    real = _split.split_np

    def counting(data: bytes, scopes: list[tuple[bytes, bytes, int, int]], hints: bool,
                 keys: bool, ids_once: bool = False) -> list[ScopeChunk] | None:
        nonlocal used
        result = real(data, scopes, hints, keys, ids_once)
        used += result is not None
        return result

    monkeypatch.setattr(_split, "split_np", counting)
    for i in range(60):
        data = random_request(rnd, trace_state=0.0 if i % 2 else 0.02)
        assert summary(split_by_trace(data)) == summary(python_split(data, monkeypatch)), i
        parsed = ExportTraceServiceRequest.FromString(data)
        assert sum(c.spans for c in split_by_trace(data)) == sum(
            len(ss.spans) for rs in parsed.resource_spans for ss in rs.scope_spans)
    assert used > 10  # the vectorized walk did run


def test_reference_payload_uses_the_vectorized_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _split.split_np
    used: list[bool] = []
    monkeypatch.setattr(_split, "split_np", lambda *a: used.append(True) or real(*a))
    for data in ReferenceLoad().requests(3):
        fast = split_by_trace(data)
        assert used and summary(fast) == summary(python_split(data, monkeypatch))
        assert sum(ts.maybe_error for c in fast for ts in c.by_trace.values()) == 5  # 5 traces have an error


@pytest.mark.parametrize("spans", [5, 400])  # the Python walk and the vectorized walk
@pytest.mark.parametrize("key_hints", [True, False])
def test_error_hints(spans: int, key_hints: bool) -> None:
    """A trace is flagged when a span has an ERROR status (with or without message and flags) or, when
    asked for, an ``error`` attribute; never for OK or UNSET statuses or error-like bytes elsewhere."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    cases = {
        1: ("error", {}), 2: ("error+message", {"message": "boom"}), 3: ("error+flags", {"flags": 0x301}),
        4: ("ok", {}), 5: ("unset+message", {"message": "x"}), 6: ("attribute", {}),
        7: ("lookalike", {}), 8: ("ok+flags", {"flags": 0x100}),
    }
    expected = {1: True, 2: True, 3: True, 4: False, 5: False, 6: key_hints, 7: False, 8: False}
    for i in range(spans):
        t = i % len(cases) + 1
        kind, extra = cases[t]
        s = ss.spans.add(trace_id=t.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op",
                         start_time_unix_nano=1, end_time_unix_nano=2)
        s.attributes.append(KeyValue(key="padding", value=AnyValue(string_value="x" * 20)))
        if kind.startswith("error"):
            s.status.code = 2  # type: ignore[assignment]
        elif kind.startswith("ok"):
            s.status.code = 1  # type: ignore[assignment]
        if "message" in extra:
            s.status.message = extra["message"]
        if "flags" in extra:
            s.flags = extra["flags"]
        if kind == "attribute":
            s.attributes.append(KeyValue(key="error", value=AnyValue(bool_value=True)))
        if kind == "lookalike":  # an ERROR code's bytes, but inside an attribute value (not after a 7a)
            s.attributes.append(KeyValue(key="v", value=AnyValue(bytes_value=b"\x18\x02\x08\x18\x02")))
            s.attributes.append(KeyValue(key="errors", value=AnyValue(int_value=3)))
            s.attributes.append(KeyValue(key="email", value=AnyValue(string_value="errorr")))  # 05 65: a near miss
    for chunk in split_by_trace(req.SerializeToString(), SplitOptions(error_attribute=key_hints)):
        for tid, ts in chunk.by_trace.items():
            t = int.from_bytes(tid, "big")
            assert ts.maybe_error == expected[t], cases[t]


@pytest.mark.parametrize("spans", [3, 300])  # the Python walk and the vectorized walk
def test_options_belong_to_each_call(spans: int) -> None:
    """Two callers with different options in one process (two services' receivers): each split works out
    what its own options ask for, whatever the other asked before."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(spans):
        t = i % 3 + 1  # trace 1: an ERROR status; 2: an ``error`` attribute; 3: neither
        s = ss.spans.add(trace_id=t.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op",
                         start_time_unix_nano=1, end_time_unix_nano=2)
        s.attributes.append(KeyValue(key="padding", value=AnyValue(string_value="x" * 20)))
        if t == 1:
            s.status.code = 2  # type: ignore[assignment]
        elif t == 2:
            s.attributes.append(KeyValue(key="error", value=AnyValue(bool_value=True)))
    data = req.SerializeToString()

    def hints(options: SplitOptions | None) -> list[bool]:
        chunks = split_by_trace(data) if options is None else split_by_trace(data, options)
        flags = {tid: ts.maybe_error for c in chunks for tid, ts in c.by_trace.items()}
        return [flags[t.to_bytes(16, "big")] for t in (1, 2, 3)]

    status_only, everything, none = (SplitOptions(error_attribute=False), SplitOptions(),
                                     SplitOptions(error_hints=False))
    for _ in range(2):
        assert hints(status_only) == [True, False, False]
        assert hints(everything) == [True, True, False]
        assert hints(none) == [True, True, True]
    assert hints(SplitOptions(error_hints=False, error_attribute=True)) == [True, True, True]
    assert hints(None) == [True, True, False]  # without options: everything, right for any pipeline


@pytest.mark.parametrize("spans", [5, 400])  # the Python walk and the vectorized walk
@pytest.mark.parametrize("bad", ["trace_zero", "span_zero", "parent_len"])
def test_invalid_ids_are_refused(spans: int, bad: str) -> None:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(spans):
        s = ss.spans.add(trace_id=(i // 5 + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"),
                         name="op", start_time_unix_nano=1, end_time_unix_nano=2)
        s.attributes.append(KeyValue(key="padding", value=AnyValue(string_value="x" * 20)))
    victim = ss.spans[spans // 2]
    if bad == "trace_zero":
        victim.trace_id = bytes(16)
    elif bad == "span_zero":
        victim.span_id = bytes(8)
    else:
        victim.parent_span_id = b"\x01\x02\x03"
    with pytest.raises(InvalidSpanIds):
        split_by_trace(req.SerializeToString())


def test_malformed_bytes_raise_wire_error() -> None:
    data = next(ReferenceLoad().requests(1))
    for cut in (len(data) - 1, len(data) // 2, 100):
        with pytest.raises(WireError):
            split_by_trace(data[:cut])


def test_bytes_that_end_in_a_tag_or_hold_a_corrupt_span_raise_wire_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the property tests (test_properties.py): a length-delimited tag as the last byte, and a span
    that is not canonical and that protobuf cannot decode, raised IndexError and DecodeError."""
    with pytest.raises(WireError):
        split_by_trace(b"\x0a")
    span = b"\x12\x08" + b"\x01" * 8 + b"\x0a\x10" + b"\x02" * 16 + b"\x2a\x05ab"  # name runs past the span
    ss = b"\x12" + bytes([len(span)]) + span
    rs = b"\x12" + bytes([len(ss)]) + ss
    with pytest.raises(WireError):
        python_split(b"\x0a" + bytes([len(rs)]) + rs, monkeypatch)
