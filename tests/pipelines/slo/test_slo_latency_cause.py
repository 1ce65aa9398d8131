"""A latency objective's bad events are explained by the critical-path walk, run by the slo stage itself
(no root_cause stage in front, or one without a latency threshold): the burn pages the team that owns the
slow dependency, and the page carries the critical path. Real slo and alert_routing stages, a real
webhook receiver on 127.0.0.1, the ownership catalog on disk, a controllable clock."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace, make_trace
from pipelines.slo.processor import critical_path_text
from tests.pipelines.alert_routing.helpers import CaptureServer
from tests.pipelines.slo.helpers import T0, Clock, processor, resource, slo_doc
from tests.pipelines.slo.test_slo_routing import Shop

MS = 1_000_000
_ids = itertools.count(1)
SIGNAL: dict[bytes, bytes] = {}  # trace id -> the signal span's id


@pytest.fixture
async def server() -> AsyncIterator[CaptureServer]:
    srv = await CaptureServer().start()
    yield srv
    await srv.stop()


def _span(tid: bytes, name: str, start_ms: float, end_ms: float, parent: bytes = b"",
          kind: int = Span.SPAN_KIND_SERVER, **attributes: str) -> Span:
    base = int(T0 * 1e9)
    return Span(trace_id=tid, span_id=next(_ids).to_bytes(8, "big"), parent_span_id=parent, name=name, kind=kind,
                start_time_unix_nano=base + int(start_ms * MS), end_time_unix_nano=base + int(end_ms * MS),
                attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()])


def checkout(db_ms: float, inventory_ms: float = 2.6) -> Trace:
    """frontend:place_order -> checkout:PlaceOrder, which calls inventory (``inventory_ms``) and then, from a
    CLIENT span, the uninstrumented orders-db (``db_ms``)."""
    tid = next(_ids).to_bytes(16, "big")
    inv = inventory_ms - 2.6
    sig = _span(tid, "place_order", 0, 10 + db_ms + inv, kind=Span.SPAN_KIND_INTERNAL)
    place = _span(tid, "PlaceOrder", 1, 9 + db_ms + inv, sig.span_id)
    out = _span(tid, "ReserveItems", 2, 5 + inv, place.span_id, Span.SPAN_KIND_CLIENT)
    reserve = _span(tid, "ReserveItems", 2.2, 4.8 + inv, out.span_id)
    insert = _span(tid, "insert_order", 6 + inv, 6 + inv + db_ms, place.span_id, Span.SPAN_KIND_CLIENT,
                   **{"db.system": "postgresql", "peer.service": "orders-db"})
    SIGNAL[tid] = sig.span_id
    return make_trace([(resource("frontend"), [sig]), (resource("checkout"), [place, out, insert]),
                       (resource("inventory"), [reserve])])


LATENCY_DOC = slo_doc("checkout", sli="latency", threshold="300ms", target=0.99)


async def test_a_slow_database_burns_the_latency_objective_and_pages_its_owners(tmp_path: Path,
                                                                               server: CaptureServer) -> None:
    shop = Shop(tmp_path, server, [LATENCY_DOC])
    shop.good = [checkout(db_ms=2) for _ in range(100)]
    await shop.start()
    try:
        slow = [checkout(db_ms=800) for _ in range(20)]  # 20 % slower than 300 ms: 20x the 1 % budget
        assert shop.minute(slow)  # no history: both windows burn at 20x from the first minute
        (page,) = await server.wait_count(1)
        assert server.received[0].path == "/data"  # orders-db's owners; the objective is web's (frontend)
        alert = page["alerts"][0]
        assert alert["labels"]["team"] == "data" and alert["labels"]["service"] == "orders-db"
        ann = alert["annotations"]
        assert ann["causes"].startswith("orders-db 100% (traces ")
        assert ann["trace_id"] in {t.trace_id.hex() for t in slow}
        # the critical path, in time order, with each span's own time on it: the database call has 800 ms
        path = ann["critical_path"].split(" -> ")
        assert path[0].startswith("frontend:place_order ") and path[-1] == "checkout:insert_order 800 ms", path
        assert "inventory:ReserveItems 2.6 ms" in path
        assert "path" not in ann
        assert "p99" in ann["latency_ms"]
    finally:
        await shop.stop()


def test_only_bad_events_are_walked_and_root_causes_own_failure_is_reused() -> None:
    from pipelines.root_cause import latency_cause
    from pipelines.root_cause.model import FAILURES

    clock = Clock()
    slo = processor([LATENCY_DOC], clock)
    fast, slow = checkout(db_ms=2), checkout(db_ms=800)
    slo.process_traces([fast, slow])
    clock.advance(1)
    (share,) = slo.series("checkout").causes(clock.now, 60)
    assert share.cause == "orders-db" and share.examples == (slow.trace_id.hex(),)
    # root_cause's latency failure for the signal span, when there is one, is taken as it is
    again = checkout(db_ms=900)
    failure = latency_cause(again, SIGNAL[again.trace_id], signal="checkout")
    assert failure is not None
    failure.primary = dataclasses.replace(failure.primary, service="blamed-by-root-cause")
    again.notes[FAILURES] = [failure]
    slo.process_traces([again])
    clock.advance(1)
    causes = {c.cause: c for c in slo.series("checkout").causes(clock.now, 60)}
    assert causes["blamed-by-root-cause"].path == critical_path_text(failure)


def test_many_slow_spans_in_one_round_are_counted_exactly_and_their_causes_estimated_from_a_sample(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.slo import processor as slo_processor

    walked: list[bytes] = []
    real = slo_processor.latency_cause

    def counting(trace: Trace, span_id: bytes, *args: object, **kw: object) -> object:
        walked.append(span_id)
        return real(trace, span_id, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(slo_processor, "latency_cause", counting)
    clock = Clock()
    slo = processor([LATENCY_DOC], clock)
    slow = [checkout(db_ms=800) if i % 4 else checkout(db_ms=2, inventory_ms=900) for i in range(200)]
    slo.process_traces([checkout(db_ms=2) for _ in range(100)] + slow)
    clock.advance(1)
    assert len(walked) == slo_processor.MAX_LATENCY_WALKS
    assert slo.series("checkout").sums(clock.now, 60) == (100, 200)  # every event counted
    shares = {c.cause: c.share for c in slo.series("checkout").causes(clock.now, 60)}
    assert shares == {"orders-db": 0.75, "inventory": 0.25}  # evenly spaced: the mix of the round
