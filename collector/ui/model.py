"""What every panel of the status page shows, as JSON-ready dicts (the JSON API returns them as they are).

Everything comes from what the service already keeps: the pipeline graph, the metrics registry (sampled, see
:mod:`collector.ui.samples`) and the snapshots of the components that offer one
(:class:`collector.component.StatusSource`: trace buffers, ``tail_sampling``, ``root_cause``,
``alert_routing``, ``slo``). Nothing here walks a trace buffer or looks at a span.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from collector import __version__
from collector.component import Host, StatusSource
from collector.telemetry import Telemetry
from collector.telemetry.metrics import rss_bytes
from collector.ui.samples import Samples

PANELS = ("pipelines", "sampling", "rootcauses", "alerts", "slos")
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class StageView:
    """One box of a pipeline between its receivers and exporters: a processor, or the trace buffer in front
    of a run of trace-level stages (``id``: the stage whose settings it takes; ``stages``: the run)."""

    kind: Literal["processor", "buffer"]
    id: str
    component: object
    stages: tuple[str, ...] = ()


@dataclass(frozen=True)
class PipelineView:
    id: str
    receivers: tuple[str, ...]
    stages: tuple[StageView, ...]
    exporters: tuple[str, ...]


class LimitError(ValueError):
    pass


def parse_limit(text: str | None) -> int:
    """The ``limit`` query parameter: rows per list (default 50, at most 10,000)."""
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise LimitError(f"limit must be a whole number from 0 to {MAX_LIMIT}, got {text!r}") from None
    if not 0 <= value <= MAX_LIMIT:
        raise LimitError(f"limit must be from 0 to {MAX_LIMIT}, got {value}")
    return value


class StatusModel:
    """Builds the panels of one service."""

    def __init__(self, telemetry: Telemetry, host: Host, pipelines: Sequence[PipelineView],
                 service_name: str = "tracetriage") -> None:
        self.telemetry = telemetry
        self.samples = Samples(telemetry)
        self._host = host
        self._pipelines = tuple(pipelines)
        self._service_name = service_name
        self._started = time.monotonic()
        # (pipeline, stage id, component) of every processor with a snapshot, by panel
        self._by_panel: dict[str, list[tuple[str, str, StatusSource]]] = {}
        for p in self._pipelines:
            for st in p.stages:
                if st.kind == "processor" and isinstance(st.component, StatusSource):
                    self._by_panel.setdefault(st.component.status_panel, []).append((p.id, st.id, st.component))

    # -- sources -------------------------------------------------------------------------------------------

    def _sources(self, panel: str, limit: int) -> list[dict[str, Any]]:
        """The snapshots of the processors of ``panel``, each with its pipeline and id."""
        return [{"pipeline": pid, "id": sid, **comp.status(limit)} for pid, sid, comp in self._by_panel.get(panel, ())]

    # -- panels --------------------------------------------------------------------------------------------

    def about(self) -> dict[str, Any]:
        s = self.samples.fresh()
        return {
            "service": self._service_name, "version": __version__,
            "uptime": time.monotonic() - self._started, "rss_bytes": rss_bytes(),
            "cpu_seconds": s.sum("otelcol_process_cpu_seconds"),
            "rate_window": self.samples.rate_window,
            "trace_lookup": self._host.trace_lookup is not None,
        }

    def pipelines(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        s = self.samples.fresh()
        rate = self.samples.rate
        out = []
        for p in self._pipelines:
            receivers = [{
                "id": r,
                "accepted": s.sum("otelcol_receiver_accepted_spans_total", receiver=r),
                "refused": s.sum("otelcol_receiver_refused_spans_total", receiver=r),
                "accepted_rate": rate("otelcol_receiver_accepted_spans_total", receiver=r),
                "refused_rate": rate("otelcol_receiver_refused_spans_total", receiver=r),
            } for r in p.receivers]
            stages: list[dict[str, Any]] = []
            for st in p.stages:
                if st.kind == "buffer":
                    comp = st.component
                    snap = comp.status(limit) if isinstance(comp, StatusSource) else {}
                    snap.pop("panel", None)
                    stages.append({"kind": "buffer", "id": st.id, **snap})
                    continue
                labels = {"processor": st.id, "pipeline": p.id}
                stages.append({
                    "kind": "processor", "id": st.id,
                    "incoming": s.sum("otelcol_processor_incoming_items_total", **labels),
                    "outgoing": s.sum("otelcol_processor_outgoing_items_total", **labels),
                    "incoming_rate": rate("otelcol_processor_incoming_items_total", **labels),
                    "outgoing_rate": rate("otelcol_processor_outgoing_items_total", **labels),
                    "refused": s.sum("otelcol_processor_refused_spans_total", processor=st.id),
                    "refused_rate": rate("otelcol_processor_refused_spans_total", processor=st.id),
                })
            exporters = [{
                "id": e,
                "sent": s.sum("otelcol_exporter_sent_spans_total", exporter=e),
                "sent_rate": rate("otelcol_exporter_sent_spans_total", exporter=e),
                "failed": s.sum("otelcol_exporter_send_failed_spans_total", exporter=e),
                "failed_rate": rate("otelcol_exporter_send_failed_spans_total", exporter=e),
                "enqueue_failed": s.sum("otelcol_exporter_enqueue_failed_spans_total", exporter=e),
                "queue_size": s.sum("otelcol_exporter_queue_size", exporter=e),
                "queue_capacity": s.sum("otelcol_exporter_queue_capacity", exporter=e),
            } for e in p.exporters]
            out.append({"id": p.id, "receivers": receivers, "stages": stages, "exporters": exporters})
        return {"rate_window": self.samples.rate_window, "pipelines": out}

    def sampling(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        return {"processors": [_without_panel(x) for x in self._sources("sampling", limit)]}

    def rootcauses(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        return {"processors": [_without_panel(x) for x in self._sources("rootcauses", limit)]}

    def alerts(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        s = self.samples.fresh()
        processors = [_without_panel(x) for x in self._sources("alerts", limit)]
        for proc in processors:
            for r in proc.get("receivers", []):
                name = r["name"]
                r["sent"] = s.sum("tracetriage_alerts_sent_total", receiver=name, status="sent")
                r["failed"] = s.sum("tracetriage_alerts_sent_total", receiver=name, status="failed")
                r["dropped"] = s.sum("tracetriage_alerts_sent_total", receiver=name, status="dropped")
                r["undeliverable"] = s.sum("tracetriage_alerts_undeliverable_total", receiver=name)
        undeliverable = [{"receiver": dict(k[1]).get("receiver", ""), "team": dict(k[1]).get("team", ""),
                          "pages": v}
                         for k, v in s.sums.items()
                         if k[0] == "tracetriage_alerts_undeliverable_total" and len(k[1]) == 2 and v > 0]
        return {"processors": processors, "undeliverable": undeliverable}

    def slos(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        return {"processors": [_without_panel(x) for x in self._sources("slos", limit)]}

    def everything(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        return {"about": self.about(), "pipelines": self.pipelines(limit), "sampling": self.sampling(limit),
                "rootcauses": self.rootcauses(limit), "alerts": self.alerts(limit), "slos": self.slos(limit)}

    def lookup(self, trace_id: bytes) -> dict[str, Any] | None:
        """What the host's trace lookup knows of ``trace_id`` (raises LookupError when there is no lookup)."""
        lookup = self._host.trace_lookup
        if lookup is None:
            raise LookupError("trace lookup needs service.telemetry.debug")
        return lookup.lookup(trace_id)


def _without_panel(snap: dict[str, Any]) -> dict[str, Any]:
    snap.pop("panel", None)
    return snap


def parse_trace_id(text: str) -> bytes:
    """A trace id as 32 hex digits (spaces around it and a ``0x`` prefix are allowed)."""
    t = text.strip().lower().removeprefix("0x")
    if len(t) != 32:
        raise ValueError(f"a trace id is 32 hex digits; got {len(t)} characters")
    try:
        tid = bytes.fromhex(t)
    except ValueError:
        raise ValueError("a trace id is 32 hex digits (0-9, a-f)") from None
    if tid == bytes(16):
        raise ValueError("the all-zero trace id is invalid")
    return tid
