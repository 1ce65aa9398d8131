"""``tracetriage status --endpoint URL``: the status page's summary in the terminal, from ``/api/v1/status``."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from collector.ui.svg import number, rate

TIMEOUT = 10.0


class StatusError(Exception):
    """The status could not be read (the message says why and from where)."""


def fetch(endpoint: str, limit: int = 10, timeout: float = TIMEOUT, token: str | None = None,
          ca_file: str | None = None) -> dict[str, Any]:
    """``/api/v1/status`` of the collector whose status page is at ``endpoint`` (``host:port`` or a URL);
    ``token``: a bearer token for a page behind an authenticator; ``ca_file``: the CA of an https page
    (else the system's)."""
    base = endpoint if "://" in endpoint else f"http://{endpoint}"
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StatusError(f"--endpoint {endpoint!r}: give host:port or an http(s) URL of the status page")
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/api/v1/status",
                                   f"limit={limit}", ""))
    try:
        context = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
    except OSError as e:
        raise StatusError(f"--ca-file {ca_file}: {e.strerror or e}") from None
    except ssl.SSLError as e:
        raise StatusError(f"--ca-file {ca_file}: not a PEM CA certificate ({e.reason})") from None
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only, checked above
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:  # noqa: S310 - http(s) only
            data: dict[str, Any] = json.loads(r.read())
    except urllib.error.HTTPError as e:
        hint = " (the page needs credentials: --token-file)" if e.code == 401 else ""
        raise StatusError(f"{url}: HTTP {e.code} {e.reason}{hint}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise StatusError(f"{url}: cannot connect ({reason}); is service.telemetry.ui on at that address?") from e
    except ValueError as e:
        raise StatusError(f"{url}: not a status response ({e})") from e
    return data


def summary(data: dict[str, Any]) -> str:
    """The panels as plain text lines (the same data as the page)."""
    a = data["about"]
    lines = [f"{a['service']} {a['version']}: up {a['uptime']:.0f}s, {number(a['rss_bytes'], 'B')} resident, "
             f"{a['cpu_seconds']:.1f} CPU s"]
    for p in data["pipelines"]["pipelines"]:
        lines.append(f"pipeline {p['id']}:")
        lines.extend(f"  receiver {r['id']}: in {rate(r['accepted_rate'])}, refused {number(r['refused'])}"
                     for r in p["receivers"])
        for st in p["stages"]:
            if st["kind"] == "buffer":
                lines.append(f"  trace buffer ({', '.join(st.get('stages', ()))}): {number(st.get('traces'))} traces, "
                             f"{number(st.get('spans'))} spans, {number(st.get('bytes'), 'B')}, oldest "
                             f"{number(st.get('oldest_trace_age'), 's')}, timer lag "
                             f"{number(st.get('decision_timer_lag'), 's')}, late spans "
                             f"{number(st.get('late_spans_kept'))} kept / {number(st.get('late_spans_dropped'))} "
                             f"dropped, overflow decisions {number(st.get('overflow_decisions'))}")
            else:
                lines.append(f"  processor {st['id']}: in {rate(st['incoming_rate'])}, out "
                             f"{rate(st['outgoing_rate'])}, refused {number(st['refused'])}")
        lines.extend(f"  exporter {e['id']}: sent {rate(e['sent_rate'])}, queue {number(e['queue_size'])}/"
                     f"{number(e['queue_capacity'])}, failed {number(e['failed'])}" for e in p["exporters"])
    for s in data["sampling"]["processors"]:
        for w in ("5m", "1h"):
            d = s["decisions"][w]
            lines.append(f"tail sampling {s['id']} ({s['pipeline']}), last {w}: kept {number(d['sampled'])}, "
                         f"not kept {number(d['not_sampled'])}, dropped {number(d['dropped'])}; by policy: "
                         + ", ".join(f"{p['policy']} {number(p[w]['sampled'])}" for p in s["policies"]))
    for rc in data["rootcauses"]["processors"]:
        top = ", ".join(f"{c['service']}:{c['span_name']} {number(c['count'])} (e.g. {c['example_trace_id']})"
                        for c in rc["causes"][:5]) or "none"
        lines.append(f"root causes ({rc['id']}, {rc['pipeline']}): {top}")
    for al in data["alerts"]["processors"]:
        lines.append(f"alerts ({al['id']}, {al['pipeline']}): {number(al['open_groups'])} open groups, "
                     f"{number(al['paged_groups'])} paged, {number(al['muted_alerts'])} muted, "
                     f"{al['silences']['active']} silences, {len(al['inhibit_rules'])} inhibit rules")
        for g in al["groups"][:5]:
            last = "not yet" if g["last_page_ago"] is None else f"{g['last_page_ago']:.0f}s ago"
            lines.append(f"  {g['group']}: team {g['team']}, receiver {g['receiver']}, {number(g['failures'])} "
                         f"failures, last page {last}")
        lines.extend(f"  receiver {r['name']} ({r['kind']} {r['destination']}): sent {number(r['sent'])}, "
                     f"failed {number(r['failed'])}, undeliverable {number(r['undeliverable'])}"
                     for r in al["receivers"])
    for sp in data["slos"]["processors"]:
        for o in sp["objectives"]:
            budget = o["budget_remaining"]
            burns = ", ".join(f"{w} {b:.1f}x" for w, b in o["burn_rates"].items())
            firing = [f"{x['severity']} {x['long_window']}/{x['short_window']}" for x in o["alerts"] if x["firing"]]
            lines.append(f"SLO {o['name']}: budget left {'-' if budget is None else f'{budget * 100:.1f}%'}, burn "
                         f"{burns or '-'}, dominant cause {o['dominant_cause'] or 'none'}"
                         + (f", FIRING {', '.join(firing)}" if firing else ""))
    return "\n".join(lines)
