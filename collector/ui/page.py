"""The status page as HTML: one document, inline CSS and SVG, no script. Every panel has an anchor and a
view of its own (``/view/alerts``); the trace lookup is a plain GET form (``/lookup?trace_id=...``), so
every view is a link. The page reloads itself with a meta refresh."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from collector.ui import svg
from collector.ui.svg import number, rate

TITLES = {
    "pipelines": "Pipelines", "buffers": "Trace buffers", "sampling": "Tail sampling", "rootcauses": "Root causes",
    "alerts": "Alerts", "slos": "SLOs", "lookup": "Trace lookup",
}
NO_LOOKUP = "trace lookup needs service.telemetry.debug"
VOTE_COLOURS = ("#2ca02c", "#b8bec7", "#d62728")  # sampled, not sampled, dropped

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
header{background:#1d232b;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header a{color:#9cc7ff}nav a{margin-right:10px}
section{background:#fff;margin:12px 16px;padding:10px 14px;border:1px solid #d9dde3;border-radius:6px;overflow-x:auto}
h2{font-size:16px;margin:0 0 8px}h3{font-size:14px;margin:10px 0 4px}
table{border-collapse:collapse;margin:4px 0}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
th{font-weight:600;border-bottom:1px solid #d9dde3}td.n,th.n{text-align:right}
.muted{color:#68707c}.bad{color:#b3261e;font-weight:600}.ok{color:#1b7f3b}code{font-size:12px}
svg text{font:11px system-ui,sans-serif;fill:#1d232b}svg text.title{font-weight:600;font-size:12px}
.box{fill:#eef3fb;stroke:#5b7db1}.box.buffer{fill:#e6f4ea;stroke:#3d8b57}.box.receiver,.box.exporter{fill:#f4f0fa;
stroke:#7a5fb0}.box.alarm{stroke:#b3261e;stroke-width:2.5}.arrow{stroke:#5b6470;stroke-width:1.5}
.arrow.alarm{stroke:#b3261e}.head{fill:#5b6470}svg text.rate{font-weight:600;fill:#2b4f86}
.axis{stroke:#68707c}.threshold{stroke:#b3261e;stroke-dasharray:4 3}
form input[type=text]{width:28em;font:13px monospace}
pre{background:#f0f2f5;padding:6px;overflow:auto}
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table; cells are HTML already (escape what comes from data before)."""
    h = "".join(f'<th{" class=n" if i in numeric else ""}>{escape(x)}</th>' for i, x in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _e(value: Any) -> str:
    return escape(str(value))


def _seconds(value: float | None) -> str:
    if value is None:
        return "\u2014"
    v = float(value)
    if abs(v) >= 3600:
        return f"{v / 3600:.1f}h"
    if abs(v) >= 60:
        return f"{v / 60:.1f}m"
    return f"{v:.1f}s"


def _trace_link(trace_id: str) -> str:
    if not trace_id:
        return "\u2014"
    return f'<a class="trace" href="/lookup?trace_id={_e(trace_id)}"><code>{_e(trace_id)}</code></a>'


def _where(x: dict[str, Any]) -> str:
    return f'<span class="muted">{_e(x["id"])} in pipeline {_e(x["pipeline"])}</span>'


# -- panels ---------------------------------------------------------------------------------------------------

def pipelines_panel(data: dict[str, Any]) -> str:
    parts = []
    window = data.get("rate_window")
    parts.append(f'<p class="muted">rates over the last {_seconds(window)}</p>' if window else
                 '<p class="muted">rates appear at the next refresh</p>')
    parts.extend(f"<h3>pipeline {_e(p['id'])}</h3>{svg.pipeline(p)}" for p in data["pipelines"])
    if not data["pipelines"]:
        parts.append("<p>no pipeline</p>")
    return "".join(parts)


def buffers_panel(data: dict[str, Any]) -> str:
    rows = []
    for p in data["pipelines"]:
        for st in p["stages"]:
            if st["kind"] != "buffer":
                continue
            rows.append([_e(p["id"]), _e(", ".join(st.get("stages", ()))), number(st.get("traces")),
                         f"{number(st.get('num_traces'))}", number(st.get("spans")), number(st.get("bytes"), "B"),
                         _seconds(st.get("oldest_trace_age")), _seconds(st.get("decision_timer_lag")),
                         f"{number(st.get('late_spans_kept'))} / {number(st.get('late_spans_dropped'))}",
                         number(st.get("overflow_decisions")), number(st.get("outbox_batches"))])
    if not rows:
        return "<p>no trace buffer: no pipeline has a trace-level stage</p>"
    return _table(["pipeline", "stages", "traces", "of", "spans", "bytes", "oldest trace", "timer lag",
                   "late spans kept / dropped", "overflow decisions", "outbox"], rows,
                  numeric=(2, 3, 4, 5, 6, 7, 9, 10))


def sampling_panel(data: dict[str, Any]) -> str:
    """One row of decisions per tail_sampling processor, and the votes per policy (summed over the processors
    with a policy of that name) as bars."""
    procs = data["processors"]
    if not procs:
        return "<p>no tail_sampling processor in any pipeline</p>"
    rows = []
    votes: dict[str, dict[str, list[int]]] = {"5m": {}, "1h": {}}
    for proc in procs:
        d = proc["decisions"]
        rows.append([_where(proc)] + [number(d[w][k]) for w in ("5m", "1h")
                                      for k in ("sampled", "not_sampled", "dropped")])
        for p in proc["policies"]:
            for w, by_policy in votes.items():
                row = by_policy.setdefault(p["policy"], [0, 0, 0])
                for i, k in enumerate(("sampled", "not_sampled", "dropped")):
                    row[i] += p[w][k]
    parts = [_table(["tail_sampling", "kept 5m", "not kept 5m", "dropped 5m", "kept 1h", "not kept 1h",
                     "dropped 1h"], rows, numeric=(1, 2, 3, 4, 5, 6))]
    for w, by_policy in votes.items():
        parts.append(f'<div class="muted">votes per policy, last {w}</div>')
        parts.append(svg.bars([(name, tuple(c)) for name, c in by_policy.items()],
                              ("sampled", "not sampled", "dropped"), colours=VOTE_COLOURS))
    return "".join(parts)


def rootcauses_panel(data: dict[str, Any], limit: int = 20) -> str:
    """The root causes of every root_cause processor together, most frequent first, each with a trace."""
    procs = data["processors"]
    if not procs:
        return "<p>no root_cause processor in any pipeline</p>"
    services: dict[str, list[Any]] = {}
    causes: dict[tuple[str, str, str], list[Any]] = {}
    for proc in procs:
        for x in proc["services"]:
            agg = services.setdefault(x["service"], [0, x["team"], x["example_trace_id"]])
            agg[0] += x["count"]
        for c in proc["causes"]:
            agg = causes.setdefault((c["service"], c["span_name"], c["kind"]), [0, c["team"], c["example_trace_id"]])
            agg[0] += c["count"]
    total = sum(p["total"] for p in procs)
    where = _where(procs[0]) if len(procs) == 1 else f'<span class="muted">{len(procs)} processors</span>'
    parts = [f"<h3>root_cause {where}: {number(total)} failures walked since start</h3>"]
    if not causes:
        return parts[0] + '<p class="muted">no failure seen yet</p>'
    parts.append(_table(["service", "team", "failures", "example trace"], [
        [_e(name), _e(v[1]), number(v[0]), _trace_link(v[2])]
        for name, v in sorted(services.items(), key=lambda kv: -kv[1][0])[:limit]], numeric=(2,)))
    parts.append(_table(["root-cause span", "kind", "failures", "example trace"], [
        [f"{_e(k[0])}: {_e(k[1])}", _e(k[2]), number(v[0]), _trace_link(v[2])]
        for k, v in sorted(causes.items(), key=lambda kv: -kv[1][0])[:limit]], numeric=(2,)))
    return "".join(parts)


def alerts_panel(data: dict[str, Any]) -> str:
    parts = []
    for proc in data["processors"]:
        sil = proc["silences"]
        parts.append(
            f"<h3>alert_routing {_where(proc)}</h3><p><b>{number(proc['open_groups'])}</b> open groups "
            f"(of at most {number(proc['max_groups'])}), {number(proc['alerts'])} alerts, "
            f"{number(proc['paged_groups'])} paged and firing, {number(proc['muted_alerts'])} muted; "
            f"{sil['active']} silences active, {sil['pending']} pending; "
            f"{len(proc['inhibit_rules'])} inhibit rules; trigger {_e(proc['trigger'])}</p>")
        shown = proc["groups"]
        if shown:
            if len(shown) < proc["open_groups"]:
                parts.append(f'<p class="muted">the {len(shown)} groups with most failures</p>')
            parts.append(_table(
                ["group", "team", "receiver", "alerts", "failures", "last page", "next repeat", "resolves", "muted"],
                [[f"<code>{_e(g['group'])}</code>", _e(g["team"]), _e(g["receiver"]), number(g["alerts"]),
                  number(g["failures"]),
                  "not yet" if g["last_page_ago"] is None else f"{_seconds(g['last_page_ago'])} ago",
                  "\u2014" if g["next_repeat_in"] is None else f"in {_seconds(g['next_repeat_in'])}",
                  "while burning" if g["held"] else
                  ("\u2014" if g["resolves_in"] is None else f"in {_seconds(max(0.0, g['resolves_in']))} if quiet"),
                  number(g["muted"])] for g in shown], numeric=(3, 4, 8)))
        else:
            parts.append('<p class="muted">no open alert group</p>')
        parts.append(_table(["receiver", "kind", "destination", "routing key", "queued", "sent", "failed", "dropped",
                             "undeliverable"], [
            [_e(r["name"]), _e(r["kind"]), f"<code>{_e(r['destination'])}</code>", _e(r.get("routing_key", "")),
             number(r["pending"]), number(r["sent"]),
             f'<span class="{"bad" if r["failed"] else ""}">{number(r["failed"])}</span>', number(r["dropped"]),
             f'<span class="{"bad" if r["undeliverable"] else ""}">{number(r["undeliverable"])}</span>']
            for r in proc["receivers"]], numeric=(4, 5, 6, 7, 8)))
        if sil["in_force"]:
            parts.append(_table(["silence", "matchers", "by", "ends in"], [
                [_e(s["id"]), _e(", ".join(s["matchers"])), _e(s["created_by"]), _seconds(s["ends_in"])]
                for s in sil["in_force"]]))
        if proc["inhibit_rules"]:
            parts.append("<div>inhibit rules: " + "; ".join(f"<code>{_e(r)}</code>" for r in proc["inhibit_rules"])
                         + "</div>")
    if data["undeliverable"]:
        parts.append("<h3>undeliverable pages</h3>" + _table(["receiver", "team", "pages"], [
            [_e(u["receiver"]), _e(u["team"]), number(u["pages"])] for u in data["undeliverable"]], numeric=(2,)))
    return "".join(parts) or "<p>no alert_routing processor in any pipeline</p>"


def slos_panel(data: dict[str, Any]) -> str:
    parts = []
    for proc in data["processors"]:
        for o in proc["objectives"]:
            budget = o["budget_remaining"]
            cls = "bad" if budget is not None and budget < 0 else "ok"
            firing = ", ".join(f"{a['severity']} {a['long_window']}/{a['short_window']}"
                               for a in o["alerts"] if a["firing"])
            budget_text = "\u2014" if budget is None else f"{budget * 100:.1f}%"
            parts.append(
                f'<h3>{_e(o["display_name"] or o["name"])} <span class="muted">({_e(o["name"])}, '
                f'{_e(proc["processor"])} in pipeline {_e(proc["pipeline"])})</span></h3>'
                f'<p>{_e(o["indicator"])}, target {o["target"]:g} over {_e(o["window"])}; error budget left: '
                f'<span class="{cls}">{budget_text}</span>; '
                f'dominant cause over {_e(o["cause_window"])}: <b>{_e(o["dominant_cause"] or "none")}</b>'
                + (f'; <span class="bad">firing: {_e(firing)}</span>' if firing else "") + "</p>")
            windows: dict[str, list[tuple[float, float]]] = {}
            wanted = {a["long_window"] for a in o["alerts"]} | {a["short_window"] for a in o["alerts"]}
            for at, rates in o["history"]:
                for w, r in rates.items():
                    if w in wanted:
                        windows.setdefault(w, []).append((at, r))
            thresholds = sorted({(a["severity"], a["burn_rate"]) for a in o["alerts"]}, key=lambda x: x[1])
            parts.append(svg.lines(windows, thresholds))
            if o["causes"]:
                parts.append(_table(["cause", "share", "bad events", "example trace"], [
                    [_e(c["cause"]), f"{c['share'] * 100:.0f}%", number(round(c["count"], 1)),
                     _trace_link(c["example_trace_id"])] for c in o["causes"]], numeric=(1, 2)))
    return "".join(parts) or "<p>no slo processor in any pipeline</p>"


def lookup_panel(query: str, result: dict[str, Any] | None, error: str, available: bool) -> str:
    form = ('<form method="get" action="/lookup"><label>trace id <input type="text" name="trace_id" '
            f'value="{_e(query)}" placeholder="32 hex digits" maxlength="40"></label> '
            '<button type="submit">look up</button></form>')
    if not available:
        return form + f'<p class="muted" id="lookup-result">{NO_LOOKUP}</p>'
    if error:
        return form + f'<p class="bad" id="lookup-result">{_e(error)}</p>'
    if not query:
        return form
    if result is None:
        return form + f'<p id="lookup-result">trace <code>{_e(query)}</code> is not known here (never seen, or ' \
                      'forgotten: the lookup remembers a bounded number of recent decisions)</p>'
    return form + '<div id="lookup-result">' + _value(result) + "</div>"


def _value(v: Any) -> str:
    """A lookup result of any shape: mappings as tables, lists as lists, the rest as text."""
    if isinstance(v, dict):
        return _table(["", ""], [[_e(k), _value(x)] for k, x in v.items()])
    if isinstance(v, list | tuple):
        return "<ul>" + "".join(f"<li>{_value(x)}</li>" for x in v) + "</ul>"
    return _e(v)


# -- the document -------------------------------------------------------------------------------------------

def document(about: dict[str, Any], panels: Sequence[tuple[str, str]], refresh: float, view: str) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh:g}">' if refresh > 0 else ""
    nav = " ".join(f'<a href="/view/{k}">{escape(t)}</a>' for k, t in TITLES.items())
    body = "".join(f'<section id="{k}"><h2><a href="/view/{k}">{escape(TITLES[k])}</a></h2>{html}</section>'
                   for k, html in panels)
    every = f"refreshes every {refresh:g}s" if refresh > 0 else ""
    title = "tracetriage status" + (f": {TITLES[view]}" if view in TITLES else "")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<style>{CSS}</style></head><body><header><h1><a href=\"/\">tracetriage</a></h1>"
        f"<span>{_e(about['service'])} {_e(about['version'])}, up {_seconds(about['uptime'])}, "
        f"{number(about['rss_bytes'], 'B')} resident, {about['cpu_seconds']:.1f} CPU s</span>"
        f"<nav>{nav}</nav><span class=\"muted\">{every}</span></header>{body}</body></html>"
    )


__all__ = ["NO_LOOKUP", "TITLES", "document", "rate"]
