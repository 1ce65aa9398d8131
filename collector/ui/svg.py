"""The status page's charts, drawn on the server as inline SVG (no script, no external asset)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

BOX_W, BOX_H, GAP, PAD = 140, 70, 42, 8
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def number(value: float | None, unit: str = "") -> str:
    """``1234567`` -> ``1.23M``; None -> an em dash."""
    if value is None:
        return "\u2014"
    v = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return f"{v / limit:.3g}{suffix}{unit}"
    if v == int(v):
        return f"{int(v)}{unit}"
    return f"{v:.3g}{unit}"


def rate(value: float | None) -> str:
    return number(value, "/s")


def _text(x: float, y: float, text: str, cls: str = "", anchor: str = "middle") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}>{escape(text)}</text>'


def _box(x: float, y: float, lines: Sequence[str], kind: str, alarm: bool) -> str:
    cls = f"box {kind}" + (" alarm" if alarm else "")
    out = [f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6" class="{cls}"/>']
    for i, line in enumerate(lines[:4]):
        out.append(_text(x + BOX_W / 2, y + 17 + i * 16, line, "title" if i == 0 else "stat"))
    return "".join(out)


def _arrow(x1: float, y1: float, x2: float, y2: float, label: str, alarm: bool = False) -> str:
    cls = "arrow alarm" if alarm else "arrow"
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="{cls}" '
            f'marker-end="url(#head)"/>' + _text((x1 + x2) / 2, (y1 + y2) / 2 - 5, label, "rate"))


def pipeline(p: dict[str, Any]) -> str:
    """receivers -> stages (trace buffers shown) -> exporters, with rates on the arrows and counts in the boxes."""
    receivers, stages, exporters = p["receivers"], p["stages"], p["exporters"]
    rows = max(len(receivers), len(exporters), 1)
    cols = 2 + len(stages)
    width = PAD * 2 + cols * BOX_W + (cols - 1) * GAP
    height = PAD * 2 + rows * BOX_H + (rows - 1) * 12
    mid = height / 2
    parts = [f'<svg class="pipeline" role="img" aria-label="pipeline {escape(p["id"])}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="head"/></marker></defs>']

    def column_y(i: int, n: int) -> float:
        top = mid - (n * BOX_H + (n - 1) * 12) / 2
        return top + i * (BOX_H + 12)

    first_x = PAD + BOX_W + GAP
    for i, r in enumerate(receivers):
        y = column_y(i, len(receivers))
        alarm = bool(r.get("refused_rate"))
        parts.append(_box(PAD, y, [f"receiver {r['id']}", f"in {rate(r['accepted_rate'])}",
                                   f"refused {number(r['refused'])}"], "receiver", alarm))
        parts.append(_arrow(PAD + BOX_W, y + BOX_H / 2, first_x - 2, mid, rate(r["accepted_rate"]), alarm))
    x = first_x
    for i, st in enumerate(stages):
        y = mid - BOX_H / 2
        if st["kind"] == "buffer":
            lines = ["trace buffer", f"{number(st.get('traces'))} traces, "
                     f"{number(st.get('spans'))} spans", f"{number(st.get('bytes'), 'B')}, oldest "
                     f"{number(st.get('oldest_trace_age'), 's')}",
                     f"overflow {number(st.get('overflow_decisions'))}, "
                     f"lag {number(st.get('decision_timer_lag'), 's')}"]
            alarm = bool(st.get("overflow_decisions"))
            out_label = ""
        else:
            lines = [st["id"], f"in {rate(st['incoming_rate'])}", f"out {rate(st['outgoing_rate'])}",
                     f"refused {number(st['refused'])}"]
            alarm = bool(st.get("refused_rate"))
            out_label = rate(st["outgoing_rate"])
        parts.append(_box(x, y, lines, st["kind"], alarm))
        if i < len(stages) - 1:
            parts.append(_arrow(x + BOX_W, mid, x + BOX_W + GAP - 2, mid, out_label))
        x += BOX_W + GAP
    last_x = x - GAP
    for i, e in enumerate(exporters):
        y = column_y(i, len(exporters))
        cap = e["queue_capacity"]
        fill = f"queue {number(e['queue_size'])}/{number(cap)}" if cap else "no queue"
        alarm = bool(e.get("failed_rate")) or bool(e.get("enqueue_failed"))
        parts.append(_box(x, y, [f"exporter {e['id']}", f"sent {rate(e['sent_rate'])}", fill,
                                 f"failed {number(e['failed'])}"], "exporter", alarm))
        parts.append(_arrow(last_x + 2 if stages else first_x - GAP + BOX_W, mid, x - 2, y + BOX_H / 2,
                            rate(e["sent_rate"]) if stages else "", alarm))
    parts.append("</svg>")
    return "".join(parts)


def bars(rows: Sequence[tuple[str, Sequence[float]]], legend: Sequence[str], width: int = 520,
         colours: Sequence[str] = COLOURS) -> str:
    """Horizontal stacked bars, one row per label, each segment a share of the row's total."""
    label_w, row_h = 170, 22
    height = 22 + len(rows) * row_h
    parts = [f'<svg class="bars" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg">']
    lx = label_w
    for i, name in enumerate(legend):
        parts.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{colours[i % len(colours)]}"/>')
        parts.append(_text(lx + 14, 13, name, "legend", "start"))
        lx += 14 + 8 * len(name) + 12
    span = width - label_w - 70
    for r, (label, values) in enumerate(rows):
        y = 22 + r * row_h
        parts.append(_text(label_w - 6, y + 14, label, "label", "end"))
        total = sum(values)
        x = float(label_w)
        for i, v in enumerate(values):
            w = span * v / total if total else 0.0
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                             f'fill="{colours[i % len(colours)]}">'
                             f'<title>{escape(legend[i])}: {number(v)}</title></rect>')
            x += w
        parts.append(_text(label_w + span + 6, y + 14, number(total), "label", "start"))
    parts.append("</svg>")
    return "".join(parts)


def lines(series: dict[str, list[tuple[float, float]]], thresholds: Sequence[tuple[str, float]],
          width: int = 520, height: int = 170) -> str:
    """A line chart of burn rates over time (one line per window) with dashed lines at the alert rates."""
    left, right, top, bottom = 44, 90, 10, 22
    pts = [p for s in series.values() for p in s]
    parts = [f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg">']
    if not pts:
        parts.append(_text(width / 2, height / 2, "no evaluation yet", "label"))
        parts.append("</svg>")
        return "".join(parts)
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    ymax = max([p[1] for p in pts] + [t for _, t in thresholds] + [1.0]) * 1.1
    pw, ph = width - left - right, height - top - bottom

    def xy(t: float, v: float) -> tuple[float, float]:
        x = left + (pw * (t - t0) / (t1 - t0) if t1 > t0 else pw)
        return x, top + ph - ph * min(v, ymax) / ymax

    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="axis"/>')
    parts.append(_text(left - 4, top + 8, number(ymax) + "x", "label", "end"))
    parts.append(_text(left - 4, top + ph, "0", "label", "end"))
    parts.append(_text(left, height - 6, f"{number(t1 - t0, 's')} ago", "label", "start"))
    parts.append(_text(left + pw, height - 6, "now", "label", "end"))
    for name, value in thresholds:
        _, y = xy(t0, value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" class="threshold"/>')
        parts.append(_text(left + pw + 4, y + 4, f"{name} {number(value)}x", "label", "start"))
    for i, (name, s) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, v) for t, v in s))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
                     f'<title>burn rate over {escape(name)}</title></polyline>')
        parts.append(f'<rect x="{left + pw + 4}" y="{top + 40 + i * 14}" width="10" height="3" fill="{colour}"/>')
        parts.append(_text(left + pw + 18, top + 44 + i * 14, name, "legend", "start"))
    parts.append("</svg>")
    return "".join(parts)
