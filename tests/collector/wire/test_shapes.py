"""The wire split on every payload shape of the shape matrix (bench.shapes), by each walk: the same traces,
counts, roots and times as the decoded request says, ``maybe_error`` only on traces with a span in error
(``error = false`` in any form, error-like keys, a status written first, flags in the middle: none flags a
trace), and the fast walks take every shape (no fallback to the Python walk)."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from bench.shapes import SHAPES, build_request, encode
from collector.wire import ScopeChunk, _jit, _split, load_compiled, split_by_trace
from tests.collector.wire.support import in_error

BINARY = sorted(name for name, shape in SHAPES.items() if not shape.json)


def truth(data: bytes) -> dict[bytes, tuple[int, bool, int, int, bool]]:
    """Per trace id, from the decoded request: spans, a root among them, earliest start, latest end, in error."""
    out: dict[bytes, tuple[int, bool, int, int, bool]] = {}
    for rs in ExportTraceServiceRequest.FromString(data).resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                n, root, lo, hi, err = out.get(s.trace_id, (0, False, 2**64, 0, False))
                out[s.trace_id] = (n + 1, root or not s.parent_span_id, min(lo, s.start_time_unix_nano),
                                   max(hi, s.end_time_unix_nano),
                                   err or in_error(ScopeSpans(spans=[s]).SerializeToString()))
    return out


def summary(chunks: list[ScopeChunk]) -> dict[bytes, tuple[int, bool, int, int, bool]]:
    out: dict[bytes, tuple[int, bool, int, int, bool]] = {}
    for c in chunks:
        for tid, ts in c.by_trace.items():
            n, root, lo, hi, err = out.get(tid, (0, False, 2**64, 0, False))
            out[tid] = (n + ts.count, root or ts.has_root, min(lo, ts.start), max(hi, ts.end), err or ts.maybe_error)
    return out


@pytest.mark.parametrize("walk", ["compiled", "vectorized", "python"])
@pytest.mark.parametrize("shape", BINARY)
def test_split_on_every_shape(shape: str, walk: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SHAPES[shape]
    data = encode(build_request(spec, 0, seed=3), spec.order)  # its first trace fails
    taken: list[bool] = []
    if walk == "compiled":
        assert load_compiled()
        real_jit = _split.split_jit
        monkeypatch.setattr(_split, "split_jit", lambda *a: taken.append(True) or real_jit(*a))
    else:
        monkeypatch.setattr(_jit, "_kernel", None)
        if walk == "vectorized":
            real_np = _split.split_np
            monkeypatch.setattr(_split, "split_np", lambda *a: taken.append(real_np(*a) is not None) or real_np(*a))
        else:
            monkeypatch.setattr(_split, "MIN_BYTES", 1 << 62)
    got = summary(split_by_trace(data))
    assert got == truth(data)
    assert any(err for *_, err in got.values())  # (exact: only the failing traces are flagged)
    if walk != "python":
        assert taken == [True], "the fast walk did not take this shape"
