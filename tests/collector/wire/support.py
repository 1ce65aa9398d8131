"""Requests for the wire tests: random ones in every shape the walks meet, and the exact answers."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from collector.wire import ScopeChunk, _jit, _split, split_by_trace


def python_split(data: bytes, monkeypatch: pytest.MonkeyPatch) -> list[ScopeChunk]:
    """split_by_trace by the Python walk alone."""
    with monkeypatch.context() as m:
        m.setattr(_split, "MIN_BYTES", 1 << 62)
        m.setattr(_jit, "_kernel", None)
        return split_by_trace(data)


def in_error(framed_spans: bytes) -> bool:
    """Exactly: some span is in error (an ERROR status, or an ``error`` attribute that is true, bool or the
    string "true" in any case, with a status other than OK)."""
    spans = ScopeSpans.FromString(framed_spans).spans
    return any(s.status.code == 2 or (s.status.code != 1 and _error_true(s.attributes)) for s in spans)


def _error_true(attributes: Sequence[KeyValue]) -> bool:
    for kv in attributes:
        if kv.key == "error":
            which = kv.value.WhichOneof("value")
            if which == "bool_value":
                return kv.value.bool_value
            return which == "string_value" and kv.value.string_value.lower() == "true"
    return False


# ``error`` attribute values as instrumentations write them: only the first two put a span in error.
ERROR_VALUES = (AnyValue(bool_value=True), AnyValue(string_value="TRUE"), AnyValue(bool_value=False),
                AnyValue(string_value="false"), AnyValue(int_value=0), AnyValue(string_value="False"),
                AnyValue(int_value=1), AnyValue(double_value=1.0), AnyValue())


def random_request(rnd: random.Random, trace_state: float) -> bytes:
    req = ExportTraceServiceRequest()
    tids = [rnd.randbytes(16) for _ in range(rnd.randint(1, 30))]
    for _ in range(rnd.randint(1, 4)):
        rs = req.resource_spans.add()
        service = AnyValue(string_value=f"s{rnd.randint(0, 9)}")
        rs.resource.attributes.append(KeyValue(key="service.name", value=service))
        if rnd.random() < 0.3:
            rs.schema_url = "https://example.com/r"
        for _ in range(rnd.randint(0, 3)):
            ss = rs.scope_spans.add()
            if rnd.random() < 0.7:
                ss.scope.name = "lib"
            if rnd.random() < 0.3:
                ss.schema_url = "https://example.com/s"
            tid = rnd.choice(tids)
            for _ in range(rnd.randint(0, 120)):
                if rnd.random() < 0.3:
                    tid = rnd.choice(tids)
                s = ss.spans.add(trace_id=tid, span_id=rnd.randbytes(7) + b"\x01")
                if rnd.random() < 0.7:
                    s.parent_span_id = rnd.randbytes(8)
                if rnd.random() < trace_state:
                    s.trace_state = "vendor=1"
                if rnd.random() < 0.9:
                    s.name = "n" * rnd.choice([0, 3, 20, 130, 200])
                if rnd.random() < 0.8:
                    s.kind = rnd.randint(0, 5)  # type: ignore[assignment]
                if rnd.random() < 0.95:
                    s.start_time_unix_nano = rnd.randint(0, 2**63)
                    s.end_time_unix_nano = rnd.randint(0, 2**63)
                for k in range(rnd.randint(0, 12)):
                    value = AnyValue(bytes_value=rnd.randbytes(rnd.randint(0, 60)))
                    s.attributes.append(KeyValue(key=f"k{k}", value=value))
                if rnd.random() < 0.2:
                    s.links.add(trace_id=rnd.choice(tids), span_id=rnd.randbytes(8))
                if rnd.random() < 0.2:
                    s.attributes.append(KeyValue(key="error", value=rnd.choice(ERROR_VALUES)))
                if rnd.random() < 0.05:
                    s.events.add(name="error").attributes.append(KeyValue(key="error", value=ERROR_VALUES[0]))
                if rnd.random() < 0.05:
                    s.attributes.append(KeyValue(key="error.type", value=AnyValue(string_value="true")))
                if rnd.random() < 0.1:
                    s.status.code = 2  # type: ignore[assignment]
                if rnd.random() < 0.05:
                    s.status.message = "boom"
                if rnd.random() < 0.3:
                    s.flags = rnd.choice([0x100, 0x301, 0xFFFFFFFF])
    return req.SerializeToString()


# An edit of a request: (what, where as a fraction of its length, a byte or a length).
edits = st.lists(st.tuples(st.sampled_from(["set", "insert", "delete", "truncate", "flip", "duplicate"]),
                           st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4)


def mutate(data: bytes, changes: list[tuple[str, float, int]]) -> bytes:
    out = bytearray(data)
    for what, where, value in changes:
        if not out:
            out.append(value)
            continue
        at = int(where * len(out))
        if what == "set":
            out[at] = value
        elif what == "insert":
            out.insert(at, value)
        elif what == "delete":
            del out[at]
        elif what == "truncate":
            del out[at:]
        elif what == "flip":
            out[at] ^= 1 << (value % 8)
        else:  # a run of bytes repeated: repeated fields, lengths that no longer match
            out[at:at] = out[at:at + value % 32]
    return bytes(out)
