"""The shape matrix (bench.shapes): every shape's requests are what its name says, ids are fresh in every
request, and a short run through a real collector emits a figure for every cell and a median line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.shapes import SHAPES, ShapeLoad, build_request, encode, table
from collector.otlpjson import request_bytes
from collector.wire import read_field
from tests.conftest import ROOT


def top_fields(span: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(span):
        number, _, _, pos = read_field(span, pos, len(span))
        out.append(number)
    return out


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_shape_is_what_it_says(name: str) -> None:
    spec = SHAPES[name]
    req = build_request(spec, 0, seed=1)
    spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == spec.spans_per_request
    by_trace: dict[bytes, int] = {}
    for s in spans:
        by_trace[s.trace_id] = by_trace.get(s.trace_id, 0) + 1
    assert set(by_trace.values()) == {spec.spans_per_trace}
    ids = {s.span_id for s in spans}
    assert all(not s.parent_span_id or s.parent_span_id in ids for s in spans)  # real trees
    failing = {s.trace_id for s in spans if s.status.code == 2}
    assert len(failing) == -(-len(by_trace) // 50)  # 2 %, the first trace of each 50
    if spec.error_value is not None:
        assert all(any(kv.key == "error" for kv in s.attributes) for s in spans)
    assert len(req.resource_spans) == min(spec.resources, len(spans))
    if spec.scope_per_span:
        assert all(len(ss.spans) == 1 for rs in req.resource_spans for ss in rs.scope_spans)
    assert ExportTraceServiceRequest.FromString(encode(req, spec.order)) == req


@pytest.mark.parametrize("order", ["status_first", "flags_middle"])
def test_encoders_field_orders(order: str) -> None:
    spec = SHAPES[order]
    req = build_request(spec, 0, seed=1)
    data = encode(req, order)
    span = req.resource_spans[0].scope_spans[0].spans[1]  # (not the root: it has a parent id)
    raw = span.SerializeToString()  # the same fields, in number order (and so the same length)
    at = data.index(raw[:28])  # its trace id and span id
    fields = top_fields(data[at:at + len(raw)])
    if order == "status_first":
        assert fields.index(15) == fields.index(8) + 1 < fields.index(9)  # status after the end time
    else:
        assert fields.index(16) == fields.index(4) + 1 < fields.index(5)  # flags after the parent id


def test_ids_are_fresh_in_every_request() -> None:
    for name in ("baseline", "json"):
        load = ShapeLoad(name)
        a, b = load.requests(2)
        if name == "json":
            a, b = request_bytes(a), request_bytes(b)
        ta = {s.trace_id for rs in ExportTraceServiceRequest.FromString(a).resource_spans
              for ss in rs.scope_spans for s in ss.spans}
        tb = {s.trace_id for rs in ExportTraceServiceRequest.FromString(b).resource_spans
              for ss in rs.scope_spans for s in ss.spans}
        assert len(ta) == 50 and not ta & tb


@pytest.mark.timeout(300)
def test_short_matrix_emits_every_cell() -> None:
    r = subprocess.run([sys.executable, "-m", "bench.shapes", "--shape", "baseline", "--shape", "json",
                        "--scenario", "full", "--jit", "off", "--rounds", "1", "--requests", "4"],
                       cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    cells = {(x["shape"], x["scenario"], x["jit"]) for x in lines if x["bench"] == "shape"}
    assert cells == {("baseline", "full", False), ("json", "full", False)}
    medians = [x for x in lines if x["bench"] == "shape_median"]
    assert all(x["spans_per_cpu_s"] > 0 and 0 < x["of_parse"] < 1 for x in medians)
    text = table(medians)
    assert "| baseline |" in text and "| json |" in text and "full no jit" in text


def test_json_decode_emits_every_decoder() -> None:
    r = subprocess.run([sys.executable, "-m", "bench.shapes", "--rounds", "1", "json-decode"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    (line,) = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert line["bench"] == "json_decode" and line["round"] == 1
    assert all(line[k] > 0 for k in ("json_loads", "msgspec", "request_bytes", "json_format")), line
