"""``tracetriage catalog diff``: drift between the dependencies traces show and the catalog files.

It asks a running collector (the telemetry server of ``--config``, or ``--url``) for
``/catalog/dependencies?format=json`` and compares with the Backstage catalog files of ``--catalog``:

* **undeclared**: a Component's dependency observed in traces but not in its ``spec.dependsOn``;
* **stale**: declared but not seen for ``stale_after`` (last seen longer ago, or never seen while the
  collector has been watching for at least ``stale_after``; a dependency never seen by a collector watching
  for less is listed as not yet seen, which is no drift);
* **unowned**: services seen in traces that no catalog Component owns.

Exit code 0: no drift; 1: drift found; 2: bad arguments, unreadable catalog files, or no collector answers.
"""

from __future__ import annotations

import glob
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.config.net import format_address, parse_endpoint
from pipelines.ownership.catalog import CatalogSyntaxError, Component, read_catalog
from pipelines.ownership.dependencies import dependency_ref

DEFAULT_STALE_AFTER = 7 * 86400.0
TIMEOUT = 10.0


class DiffError(Exception):
    """The diff cannot be made (exit code 2); the message says why."""


@dataclass
class Drift:
    undeclared: list[tuple[str, str, float]] = field(default_factory=list)  # component, reference, last seen
    stale: list[tuple[str, str, float | None]] = field(default_factory=list)  # component, reference, last seen
    not_yet_seen: list[tuple[str, str]] = field(default_factory=list)  # component, reference
    unowned: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.undeclared or self.stale or self.unowned)


def read_components(patterns: Sequence[str]) -> dict[str, Component]:
    """The Components of the catalog files matching ``patterns``, by lowercased name."""
    if not patterns:
        raise DiffError("--catalog: give at least one catalog file or glob")
    out: dict[str, Component] = {}
    for pattern in patterns:
        paths = sorted(glob.glob(pattern, recursive=True))
        if not paths:
            raise DiffError(f"--catalog {pattern}: no file matches")
        for path in paths:
            try:
                catalog = read_catalog(path)
            except (OSError, CatalogSyntaxError) as e:
                raise DiffError(f"--catalog: {e}") from e
            if catalog.problems:
                raise DiffError("--catalog: " + "; ".join(str(p) for p in catalog.problems))
            for c in catalog.components:
                out.setdefault(c.name.lower(), c)
    return out


def diff(observed: dict[str, Any], components: dict[str, Component], stale_after: float) -> Drift:
    """Compare what a collector observed (its ``/catalog/dependencies?format=json``) with the catalog."""
    now = float(observed["now"])
    watching = now - float(observed["watching_since"])
    seen: dict[str, dict[str, float]] = observed["components"]
    catalog = {name: c.name for name, c in components.items()}
    drift = Drift()
    for service, deps in sorted(seen.items()):
        component = components.get(service)
        if component is None:
            continue  # listed as unowned below
        declared = set(component.depends_on)
        for ref, last in sorted(deps.items()):
            # The collector names callees by its own catalog; the files given here decide component or resource.
            kind, _, name = ref.partition(":")
            ref = dependency_ref(name, "virtual_node" if kind == "resource" else "", catalog)
            if ref not in declared and f"resource:{name}" not in declared and f"component:{name}" not in declared:
                drift.undeclared.append((component.name, ref, last))
    for name, component in sorted(components.items()):
        deps = seen.get(name, {})
        by_name = {ref.partition(":")[2]: last for ref, last in deps.items()}
        for ref in component.depends_on:
            seen_at = by_name.get(ref.partition(":")[2])
            if seen_at is not None and now - seen_at < stale_after:
                continue
            if seen_at is None and watching < stale_after:
                drift.not_yet_seen.append((component.name, ref))
            else:
                drift.stale.append((component.name, ref, seen_at))
    drift.unowned = sorted(s for s in observed["services"] if s.lower() not in components and s != "user")
    return drift


def _ago(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:.0f}s"


def report(drift: Drift, observed: dict[str, Any], stale_after: float) -> str:
    now = float(observed["now"])
    watching = now - float(observed["watching_since"])
    lines = [f"observed by the collector for {_ago(watching)}; stale after {_ago(stale_after)}"]
    lines.append(f"undeclared dependencies (seen in traces, not in spec.dependsOn): {len(drift.undeclared)}")
    lines += [f"  {c} -> {ref} (last seen {_ago(now - last)} ago)" for c, ref, last in drift.undeclared]
    lines.append(f"stale dependencies (declared, not seen for {_ago(stale_after)}): {len(drift.stale)}")
    lines += [f"  {c} -> {ref} ({'never seen' if last is None else f'last seen {_ago(now - last)} ago'})"
              for c, ref, last in drift.stale]
    if drift.not_yet_seen:
        lines.append(f"declared, not seen yet (watching for less than {_ago(stale_after)}): "
                     f"{len(drift.not_yet_seen)}")
        lines += [f"  {c} -> {ref}" for c, ref in drift.not_yet_seen]
    lines.append(f"unowned services (seen in traces, no catalog Component): {len(drift.unowned)}")
    lines += [f"  {s}" for s in drift.unowned]
    return "\n".join(lines) + "\n"


def dependencies_url(addresses: Sequence[str]) -> str:
    """The ``/catalog/dependencies`` URL of the first telemetry address (a wildcard host asks loopback)."""
    if not addresses:
        raise DiffError("the config serves no telemetry metrics endpoint (service.telemetry.metrics); give --url")
    host, port = parse_endpoint(addresses[0], "localhost:8888")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard listener is asked on loopback
        host = "127.0.0.1"
    return f"http://{format_address(host, port)}/catalog/dependencies"


def fetch(url: str) -> dict[str, Any]:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DiffError(f"{url}: give an http(s) URL of /catalog/dependencies")
    target = url + ("&" if "?" in url else "?") + "format=json"
    try:
        with urllib.request.urlopen(target, timeout=TIMEOUT) as r:  # noqa: S310 - http(s) only, checked above
            data = json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        hint = " (is an ownership extension listed in service.extensions?)" if e.code == 404 else ""
        raise DiffError(f"{url}: HTTP {e.code}{hint}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DiffError(f"{url}: no answer from a running collector: {getattr(e, 'reason', e)}") from e
    if not isinstance(data, dict) or not {"now", "watching_since", "components", "services"} <= set(data):
        raise DiffError(f"{url}: not a dependencies document")
    return data


def catalog_diff(addresses: Sequence[str], patterns: Sequence[str], stale_after: float = DEFAULT_STALE_AFTER,
                 url: str = "") -> tuple[str, int]:
    """The report and exit code of ``tracetriage catalog diff``. Raises :class:`DiffError` (exit code 2)."""
    if stale_after <= 0:
        raise DiffError("--stale-after: must be > 0")
    components = read_components(patterns)
    observed = fetch(url or dependencies_url(addresses))
    drift = diff(observed, components, stale_after)
    return report(drift, observed, stale_after), 1 if drift.found else 0
