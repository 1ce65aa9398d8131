"""The root-cause walk on every payload shape of the shape matrix (bench.shapes): the hint the wire walk
leaves flags only the failing traces (``error = false`` on every span, error-like keys, a status written
first or flags in the middle flag nothing), the failing traces are indexed from their wire bytes, and the
walk finds the same failures from the wire as from the decoded spans."""

from __future__ import annotations

import pytest

from bench.shapes import FAIL_EVERY, SHAPES, build_request, encode
from collector.model import Origin, Trace
from collector.wire import load_compiled, split_by_trace
from pipelines.root_cause.walk import find_failures

BINARY = sorted(name for name, shape in SHAPES.items() if not shape.json)


def traces(data: bytes) -> list[Trace]:
    """The request's traces as the trace buffer files them (from the split, with its hints)."""
    out: dict[bytes, Trace] = {}
    for chunk in split_by_trace(data):
        origin = Origin(chunk.resource_fields, chunk.scope_fields)
        for tid, ts in chunk.by_trace.items():
            t = out.get(tid)
            if t is None:
                t = out[tid] = Trace(tid, 0.0)
            t.add(origin, b"".join(ts.entries), ts.count, ts.start, ts.end, ts.maybe_error)
            if ts.has_root:
                t.root_seen = True
    return list(out.values())


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("shape", BINARY)
def test_failures_on_every_shape(shape: str, compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.wire import _jit

    if compiled:
        assert load_compiled()
    else:
        monkeypatch.setattr(_jit, "_kernel", None)
    spec = SHAPES[shape]
    per_request = spec.spans_per_request // spec.spans_per_trace
    requests = max(1, FAIL_EVERY // per_request)  # enough for one failing trace
    failing = flagged = from_wire = 0
    for k in range(requests):
        req = build_request(spec, k * per_request, seed=k)
        data = encode(req, spec.order)
        wire, decoded = traces(data), traces(data)
        for a, b in zip(wire, decoded, strict=True):
            flagged += a.maybe_error
            ra = find_failures(a, from_wire=True)
            rb = find_failures(b, from_wire=False)
            assert ra.failures == rb.failures
            if ra.failures:
                failing += 1
                from_wire += ra.walk is not None and ra.walk.chunks is not None
                (failure,) = ra.failures
                assert failure.signal_span_name == "GET /shop"  # the root, in error
                assert failure.primary.depth >= (1 if spec.spans_per_trace > 1 else 0)
    assert failing >= 1
    assert flagged == failing, "a trace without a span in error was flagged"
    if not spec.fan_out:  # (a fan-out failure has more spans in error than the wire index looks up)
        assert from_wire == failing
