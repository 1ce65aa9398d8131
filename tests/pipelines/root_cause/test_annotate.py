"""``rootcause.*`` attributes: the cached writer gives the same span bytes as the plain one."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines.root_cause.annotate import KEYS, Annotator, annotate
from pipelines.root_cause.model import LATENCY, RootCause


def cause(n: int, depth: int = 2) -> RootCause:
    return RootCause(service=f"svc{n % 3}", span_name="SELECT", span_id=n.to_bytes(8, "big"), depth=depth,
                     path=tuple(f"s:{i}" for i in range(depth + 1)), end_time_unix_nano=n, self_time_ms=n / 7)


def test_annotator_writes_what_annotate_writes() -> None:
    annotator = Annotator(limit=2)  # small: the cache is emptied and refilled on the way
    for n in range(12):
        for kind in ("error", LATENCY):
            base = Span(name="x", attributes=[KeyValue(key="rootcause.service", value=AnyValue(string_value="old")),
                                              KeyValue(key="http.route", value=AnyValue(string_value="/a"))])
            a, b = Span(), Span()
            a.CopyFrom(base)
            b.CopyFrom(base)
            annotate(a, cause(n, n % 4), kind=kind)  # type: ignore[arg-type]
            annotator(b, cause(n, n % 4), kind=kind)  # type: ignore[arg-type]
            assert a.SerializeToString() == b.SerializeToString()
            attrs = {kv.key: kv.value for kv in a.attributes}
            assert set(attrs) == {"http.route"} | KEYS - ({"rootcause.self_time_ms"} if kind == "error" else set())
            assert attrs["rootcause.service"].string_value == f"svc{n % 3}"
            assert attrs["rootcause.span_id"].string_value == n.to_bytes(8, "big").hex()
            assert attrs["rootcause.depth"].int_value == n % 4
            assert [v.string_value for v in attrs["rootcause.path"].array_value.values] == [
                f"s:{i}" for i in range(n % 4 + 1)]
            assert attrs["rootcause.kind"].string_value == kind
            if kind == LATENCY:
                assert attrs["rootcause.self_time_ms"].double_value == n / 7
