"""deploy/dashboards/tracetriage.json: a Grafana dashboard whose queries use only metrics tracetriage exports."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.common import DEPLOY, ROOT

DASHBOARD = DEPLOY / "dashboards" / "tracetriage.json"

# Metrics of the trace-level stages (the ones the dashboard plots), besides README.md's metrics table.
STAGE_METRICS = {
    "otelcol_processor_tail_sampling_count_traces_sampled_total",
    "otelcol_processor_tail_sampling_sampling_decision_latency",
    "tracetriage_root_causes_total",
    "tracetriage_alerts_sent_total",
    "tracetriage_team_spans_total",
    "tracetriage_team_bytes_total",
    # served by the servicegraph and spanmetrics processors on their own endpoint
    "traces_service_graph_request_total",
    "traces_span_metrics_calls_total",
    "traces_span_metrics_duration_milliseconds",
}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "topk", "bottomk",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "le", "label_values",
    "offset", "bool", "clamp_min", "clamp_max", "abs", "delta", "deriv", "sort_desc", "sort", "vector", "scalar",
    "label_join", "label_replace",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def readme_metrics() -> set[str]:
    """Metric names of README.md's metrics table (``a`` / ``_b`` rows name ``a`` and its sibling ``a_b``)."""
    names: set[str] = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if not line.startswith("| `otelcol_") and not line.startswith("| `tracetriage_"):
            continue
        first = line.split("|")[1]
        tokens = re.findall(r"`([a-z_]+)`", first)
        for tok in tokens:
            if tok.startswith("_") and names:
                stem = tokens[0].rsplit("_", 1)[0]
                names.add(stem + tok)
            else:
                names.add(tok)
    return names


def known_metrics() -> set[str]:
    return readme_metrics() | STAGE_METRICS


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def metric_names(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that are metric names (not functions, labels or keywords)."""
    expr = re.sub(r"label_values\(\s*([^,()]+?)\s*,\s*[a-zA-Z_]+\s*\)", r"\1", expr)  # (metric, label)
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_grouping = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_grouping)
    idents = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {i for i in idents if i not in PROMQL_WORDS and not i.startswith("__")}


def base_name(name: str, known: set[str]) -> str:
    if name in known:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return name[: -len(suffix)]
    return name


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def test_dashboard_basics() -> None:
    dash = load()
    assert dash["schemaVersion"] >= 36
    assert dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


def test_readme_metrics_parsed() -> None:
    names = readme_metrics()
    assert {"otelcol_receiver_accepted_spans_total", "otelcol_exporter_queue_size",
            "otelcol_exporter_queue_capacity", "otelcol_exporter_sent_spans_total"} <= names


def test_every_expr_uses_known_metrics() -> None:
    dash = load()
    known = known_metrics()
    exprs = [(p["title"], t["expr"]) for p in panels(dash) for t in p.get("targets", [])]
    exprs += [(f"variable {v['name']}", v["query"]["query"]) for v in dash["templating"]["list"]
              if isinstance(v.get("query"), dict)]
    assert exprs
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        for name in names:
            assert base_name(name, known) in known, f"{title}: {name} is not a tracetriage metric ({expr})"


def test_required_panels_present() -> None:
    """Spans in/out, refused, queue vs capacity, kept by policy, decision latency, root causes, pages."""
    dash = load()
    by_title = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in panels(dash)}
    wanted = {
        "Spans in / out": ["otelcol_receiver_accepted_spans_total", "otelcol_exporter_sent_spans_total"],
        "Refused and failed spans": ["otelcol_receiver_refused_spans_total"],
        "Exporter queue size vs capacity": ["otelcol_exporter_queue_size", "otelcol_exporter_queue_capacity"],
        "Traces kept by policy": ["count_traces_sampled_total", "policy, sampled"],
        "Decision latency": ["histogram_quantile", "sampling_decision_latency_bucket"],
        "Root causes by service and team": ["tracetriage_root_causes_total", "service, team"],
        "Pages sent and failed": ["tracetriage_alerts_sent_total", "status"],
        "Service graph": ["traces_service_graph_request_total", "client", "server"],
        "Requests per service (span metrics)": ["traces_span_metrics_calls_total"],
        "Error ratio per service (span metrics)": ["STATUS_CODE_ERROR"],
        "Duration p95 per service (span metrics)": ["traces_span_metrics_duration_milliseconds_bucket"],
        "Retained bytes per day by team": ["tracetriage_team_bytes_total", 'outcome="kept"', "86400"],
        "Share of retained bytes by team": ["tracetriage_team_bytes_total", "scalar(sum("],
    }
    for title, needles in wanted.items():
        assert title in by_title, f"missing panel {title!r}"
        for needle in needles:
            assert needle in by_title[title], f"{title}: expected {needle!r}"


def test_service_graph_panel_is_a_node_graph_with_edges_and_nodes() -> None:
    by_title = {p["title"]: p for p in panels(load())}
    graph = by_title["Service graph"]
    assert graph["type"] == "nodeGraph"
    exprs = {t["refId"]: t["expr"] for t in graph["targets"]}
    assert set(exprs) == {"edges", "nodes"}
    assert '"id", "->", "client", "server"' in exprs["edges"]  # each edge gets an id; client/server renamed
    renamed = graph["transformations"][0]["options"]["renameByName"]
    assert renamed["client"] == "source" and renamed["server"] == "target"


def test_metric_name_parser() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, policy) (rate(a_bucket{job=~"$job", x="y"}[$__rate_interval])))'
    assert metric_names(expr) == {"a_bucket"}
    assert metric_names("label_values(c, job)") == {"c"}
    assert metric_names('sum by (service, team) (increase(b_total{job=~"$job"}[$__range])) * 60') == {"b_total"}
