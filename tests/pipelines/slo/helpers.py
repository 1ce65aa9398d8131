"""Shared by the slo tests: a controllable clock, settings, OpenSLO documents, traces with signal spans."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import ComponentID, Kind, Settings, Telemetry
from collector.config import decode
from collector.consumer import Capabilities
from collector.model import Trace, make_trace
from pipelines.root_cause.model import FAILURES, Failure, RootCause
from pipelines.slo import Config, SloProcessor

T0 = 1_700_000_000.0  # a Tuesday, 22:13:20 UTC
_ids = itertools.count(1)


class _LatencyFailure(Failure):
    kind = "latency"


class Clock:
    """A settable clock (unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class NullConsumer:
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def consume_traces(self, batch: object) -> None:
        return None


def settings(telemetry: Telemetry | None = None, name: str = "slo") -> Settings:
    cid = ComponentID.parse(name)
    return Settings(cid, Kind.PROCESSOR, telemetry or Telemetry(), logging.getLogger(f"test.{cid}"),
                    pipeline="traces")


def slo_doc(name: str, *, service: str = "frontend", span_name: str = "place_order", sli: str = "availability",
            threshold: str = "", target: float = 0.999, window: str = "28d",
            annotations: dict[str, str] | None = None, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenSLO SLO with an inline ratioMetric indicator on tracetriage signal spans."""
    good: dict[str, Any] = {"sli": sli}
    if threshold:
        good["latency_threshold"] = threshold
    total: dict[str, Any] = {"service": service, "span_name": span_name}
    if attributes:
        total["attributes"] = attributes
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "openslo/v1", "kind": "SLO", "metadata": meta,
        "spec": {
            "service": service,
            "indicator": {"metadata": {"name": f"{name}-sli"}, "spec": {"ratioMetric": {
                "counter": True,
                "good": {"metricSource": {"type": "tracetriage", "spec": good}},
                "total": {"metricSource": {"type": "tracetriage", "spec": total}},
            }}},
            "timeWindow": [{"duration": window, "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [{"target": target}],
        },
    }


def processor(slos: Sequence[dict[str, Any]], clock: Clock, telemetry: Telemetry | None = None,
              **config: Any) -> SloProcessor:
    cfg = decode(Config, {"slos": list(slos), **config}, "processors.slo")
    return SloProcessor(settings(telemetry), cfg, clock=clock)


def resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def span(name: str, trace_id: bytes, *, parent: bytes = b"", error: bool = False, ms: float = 10.0,
         attributes: dict[str, Any] | None = None, kind: int = Span.SPAN_KIND_SERVER) -> Span:
    n = next(_ids)
    s = Span(trace_id=trace_id, span_id=n.to_bytes(8, "big"), parent_span_id=parent, name=name, kind=kind,
             start_time_unix_nano=1_700_000_000_000_000_000,
             end_time_unix_nano=1_700_000_000_000_000_000 + int(ms * 1e6))
    if error:
        s.status.code = Status.STATUS_CODE_ERROR
    for k, v in (attributes or {}).items():
        value = AnyValue(bool_value=v) if isinstance(v, bool) else (
            AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=str(v)))
        s.attributes.append(KeyValue(key=k, value=value))
    return s


def checkout_trace(*, error: bool = False, ms: float = 10.0, cause: str = "", cause_kind: str = "error",
                   signal: str = "place_order", service: str = "frontend") -> Trace:
    """frontend:POST /checkout -> frontend:<signal> -> checkout:PlaceOrder. With ``cause``, the trace
    carries a root_cause Failure for the signal span blaming that service."""
    tid = next(_ids).to_bytes(16, "big")
    root = span("POST /checkout", tid, error=error, ms=ms + 2)
    sig = span(signal, tid, parent=root.span_id, error=error, ms=ms)
    child = span("oteldemo.CheckoutService/PlaceOrder", tid, parent=sig.span_id, error=error, ms=ms - 1)
    trace = make_trace([(resource(service), [root, sig]), (resource("checkout"), [child])])
    if cause:
        rc = RootCause(service=cause, span_name="query", span_id=child.span_id, depth=2,
                       path=(f"{service}:{signal}", "checkout:PlaceOrder", f"{cause}:query"),
                       end_time_unix_nano=child.end_time_unix_nano)
        kw: dict[str, Any] = dict(signal="checkout", signal_service=service, signal_span_name=signal,
                                  signal_span_id=sig.span_id, trace_id=tid, primary=rc, root_causes=(rc,))
        if "kind" in {f.name for f in dataclasses.fields(Failure)}:
            f = Failure(**kw, kind=cause_kind)
        else:  # before the latency walk's Failure.kind: a Failure that says its kind
            f = (_LatencyFailure if cause_kind == "latency" else Failure)(**kw)
        trace.notes[FAILURES] = [f]
    return trace
