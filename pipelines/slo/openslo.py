"""OpenSLO v1 documents -> :class:`~pipelines.slo.model.Objective` s.

What is read
============

Multi-document YAML (``---`` between documents), ``apiVersion: openslo/v1``:

* ``kind: SLO`` with an inline ``spec.indicator`` (an SLI's ``metadata`` and ``spec``) or
  ``spec.indicatorRef`` naming a ``kind: SLI`` document (in any file, or inline in the config).
* ``kind: SLI``: referenced by name.
* ``DataSource``, ``Service``, ``AlertPolicy``, ``AlertCondition``, ``AlertNotificationTarget``: allowed
  and ignored (alerts come from the burn-rate alerts below, not from ``alertPolicies``).

SLO ``spec``: ``service``, ``description``, ``indicator`` | ``indicatorRef``, ``timeWindow`` (exactly one
item, rolling: ``{duration: 28d, isRolling: true}``; units m, h, d, w; absent: the processor's
``default_time_window``), ``budgetingMethod`` (``Occurrences``, the only method measured; assumed when
absent), ``objectives`` (one or more: ``target`` in (0, 1) or ``targetPercent`` in (0, 100),
``displayName``; ``op`` and ``value`` with a ``thresholdMetric``). An SLO with several objectives
gives one objective each, named ``<name>-1``, ``<name>-2`` ...; with one, the objective is named as the
SLO. ``alertPolicies`` is ignored.

The ``tracetriage`` metric source
=================================

The indicator is a ``ratioMetric`` (``good`` or ``bad``, and ``total``) or a ``thresholdMetric``,
each with ``metricSource: {type: tracetriage, spec: {...}}``. The keys of ``spec``:

=========================  =====================================================================
``service``                the signal span's resource ``service.name`` (optional)
``span_name``              the signal span's name, compared whole
``span_name_regex``        or a regular expression searched in the name (anchor with ``^...$``);
                           exactly one of ``span_name`` and ``span_name_regex`` is required
``attributes``             optional ``{key: value}``: span attributes that must have these values
                           (compared as text: ``true``, ``200``, ``GET``)
``sli``                    ``availability`` (default for ``ratioMetric``) or ``latency`` (the only
                           kind of a ``thresholdMetric``)
``latency_threshold``      ``ratioMetric`` with ``sli: latency``: a good span lasts at most this
                           long (a Go duration: ``300ms``, ``1.5s``)
=========================  =====================================================================

* **availability**: a signal span is bad when it is in error by the root-cause definition (status
  ERROR, or status not OK and attribute ``error`` = true).
* **latency**: a signal span is good when its duration is at most the threshold: ``latency_threshold``
  of a ``ratioMetric``, or ``op``/``value`` of a ``thresholdMetric``'s one objective (``value`` in
  milliseconds; ``op: lte`` means at most, ``op: lt`` below).

``good``, ``bad`` and ``total`` describe the same split of the same spans, so their ``spec`` s are
merged: a key may be given in any of them (usually the selector in ``total`` and ``sli`` in ``good``),
and a key given twice must have the same value.

Annotations of the SLO's ``metadata.annotations``
=================================================

* ``tracetriage.io/owner``: the team that owns the objective (paged when no root cause dominates).
  Without it, the owner of the objective's service (``spec.service``, else the selector's ``service``)
  in the ownership catalog.
* ``tracetriage.io/burn-alerts``: this objective's burn-rate alerts instead of the processor's, as
  ``"page 14.4x 1h/5m, page 6x 6h/30m, ticket 1x 3d/6h"`` (severity, burn rate, long/short window; units
  s, m, h, d, w; each window a whole number of the processor's ``bucket_width``, 1 minute by default).
* ``tracetriage.io/min-cause-share``: this objective's ``min_cause_share`` (0 < share <= 1).

Problems
========

An invalid document is refused with its file, its 1-based document number and the field path
(``checkout.yaml: document 2: spec.objectives[0].target: must be a number with 0 < target < 1, got
1.5``). Objectives inline in the config name ``slos[i]`` instead of a file and document.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from collector.config import Duration
from collector.errors import TraceTriageError
from pipelines.slo.model import SECONDS, BurnAlertSpec, Indicator, Objective, Selector, SliKind

API_VERSION = "openslo/v1"
SOURCE_TYPE = "tracetriage"
OWNER_ANNOTATION = "tracetriage.io/owner"
ALERTS_ANNOTATION = "tracetriage.io/burn-alerts"
SHARE_ANNOTATION = "tracetriage.io/min-cause-share"
IGNORED_KINDS = ("DataSource", "Service", "AlertPolicy", "AlertCondition", "AlertNotificationTarget")
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_WINDOW = 366 * 86400.0  # a year: the hour buckets of one objective stay below 9,000
MAX_DESCRIPTION = 1050

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._|/\\-]{0,253}[A-Za-z0-9])?$")
_SHORTHAND_RE = re.compile(r"^([1-9][0-9]*)([mhdwMQY])$")
_ALERT_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*)\s+([0-9]+(?:\.[0-9]+)?)x\s+([1-9][0-9]*[smhdw])\s*/\s*"
                       r"([1-9][0-9]*[smhdw])\s*$")

SLO_SPEC_KEYS = ("description", "service", "indicator", "indicatorRef", "timeWindow", "budgetingMethod",
                 "objectives", "alertPolicies")
OBJECTIVE_KEYS = ("displayName", "op", "value", "target", "targetPercent", "timeSliceTarget", "timeSliceWindow",
                  "indicator", "indicatorRef", "compositeWeight")
SOURCE_KEYS = ("service", "span_name", "span_name_regex", "attributes", "sli", "latency_threshold")
SELECTOR_KEYS = ("service", "span_name", "span_name_regex", "attributes")


class ObjectiveError(TraceTriageError, ValueError):
    """Objectives that cannot be used: every problem found, each with its file, document and field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{n} invalid objective document{'s' if n != 1 else ''}:\n" +
                         "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class Problem:
    file: str  # "" for a document inline in the config
    document: int  # 1-based; 0 = the file as a whole
    path: str  # the field inside the document ("" = the document)
    message: str

    def __str__(self) -> str:
        where = [w for w in (self.file, f"document {self.document}" if self.document else "", self.path) if w]
        return ": ".join([*where, self.message])


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: where it came from and its body."""

    file: str
    number: int
    body: Any
    prefix: str = ""  # for inline documents: their config path (``slos[0]``)

    def at(self, path: str) -> str:
        if not self.prefix:
            return path
        return f"{self.prefix}.{path}" if path else self.prefix

    def problem(self, path: str, message: str) -> Problem:
        return Problem(self.file, self.number, self.at(path), message)

    @property
    def where(self) -> str:
        if self.prefix:
            return self.prefix
        return f"{self.file}: document {self.number}"


# -- reading -----------------------------------------------------------------------------------------------


def parse_documents(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """The documents of one file (empty ones skipped); YAML that does not parse is a problem of the
    document where it fails (the documents before it are kept)."""
    docs: list[Document] = []
    problems: list[Problem] = []
    number = 0
    try:
        for number, body in enumerate(yaml.load_all(text, Loader=_Loader), start=1):
            if body is not None:
                docs.append(Document(file, number, body))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problems.append(Problem(file, number + 1, "", f"invalid YAML{line}: {getattr(e, 'problem', None) or e}"))
    return docs, problems


def read_file(path: str) -> tuple[list[Document], list[Problem]]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        return [], [Problem(path, 0, "", f"cannot read: {e.strerror or e}")]
    if len(data) > MAX_FILE_BYTES:
        return [], [Problem(path, 0, "", f"larger than {MAX_FILE_BYTES} bytes, not read")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return [], [Problem(path, 0, "", f"not UTF-8 text ({e})")]
    return parse_documents(text, path)


def expand(patterns: Iterable[str]) -> tuple[list[str], list[Problem]]:
    """Files named by paths, globs (``**`` allowed) and directories (their ``*.yaml`` and ``*.yml``), in the
    order given (files of one pattern sorted). A literal path that does not exist is a problem; a glob
    or directory that matches nothing is not."""
    files: list[str] = []
    problems: list[Problem] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        elif os.path.isdir(pattern):
            found = sorted(p for ext in ("*.yaml", "*.yml") for p in glob.glob(os.path.join(pattern, ext))
                           if os.path.isfile(p))
        elif os.path.exists(pattern):
            found = [pattern]
        else:
            problems.append(Problem(pattern, 0, "", "not found"))
            continue
        files.extend(p for p in found if p not in files)
    return files, problems


def inline_documents(items: Sequence[Any], prefix: str = "slos") -> list[Document]:
    """Documents written in the processor config (``apiVersion`` and ``kind`` may be left out there:
    ``openslo/v1`` and ``SLO``)."""
    docs: list[Document] = []
    for i, body in enumerate(items):
        if isinstance(body, Mapping):
            body = {"apiVersion": API_VERSION, "kind": "SLO", **body}
        docs.append(Document("", 0, body, f"{prefix}[{i}]"))
    return docs


def load(patterns: Sequence[str], inline: Sequence[Any] = (), *, default_window: float = 28 * 86400.0,
         ) -> tuple[list[Objective], list[Problem], list[str]]:
    """Read files and inline documents: (objectives, problems, files read). With any problem the
    objectives are not to be used (see :func:`load_or_raise`)."""
    files, problems = expand(patterns)
    docs: list[Document] = []
    for path in files:
        d, p = read_file(path)
        docs += d
        problems += p
    docs += inline_documents(inline)
    objectives, more = build(docs, default_window=default_window)
    return objectives, problems + more, files


def load_or_raise(patterns: Sequence[str], inline: Sequence[Any] = (), *, default_window: float = 28 * 86400.0,
                  ) -> list[Objective]:
    objectives, problems, _ = load(patterns, inline, default_window=default_window)
    if problems:
        raise ObjectiveError(problems)
    return objectives


# -- building objectives -------------------------------------------------------------------------------------


def build(documents: Sequence[Document], *, default_window: float = 28 * 86400.0,
          ) -> tuple[list[Objective], list[Problem]]:
    """Objectives from documents (SLIs first, so that any SLO may reference any SLI); every problem."""
    problems: list[Problem] = []
    slis: dict[str, tuple[Document, Mapping[str, Any]]] = {}
    slos: list[tuple[Document, Mapping[str, Any]]] = []
    sli_names: dict[str, str] = {}
    slo_names: dict[str, str] = {}
    for doc in documents:
        r = _Reader(doc, problems)
        body = doc.body
        if not isinstance(body, Mapping):
            r.problem("", f"must be a mapping with apiVersion, kind, metadata and spec, got {_kind(body)}")
            continue
        kind = body.get("kind")
        api = body.get("apiVersion")
        if api != API_VERSION:
            r.problem("apiVersion", f"must be {API_VERSION}, got {api!r}")
            continue
        if kind in IGNORED_KINDS:
            continue
        if kind not in ("SLO", "SLI"):
            r.problem("kind", f"must be an OpenSLO kind (SLO, SLI, {', '.join(IGNORED_KINDS)}), got {kind!r}")
            continue
        name = r.name(body, "metadata")
        if name is None:
            continue
        seen = sli_names if kind == "SLI" else slo_names
        if name in seen:
            r.problem("metadata.name", f"{kind} {name!r} is already defined in {seen[name]}")
            continue
        seen[name] = doc.where
        if kind == "SLI":
            slis[name] = (doc, body)
        else:
            slos.append((doc, body))
    indicators = {name: _indicator(_Reader(doc, problems), body, "", name) for name, (doc, body) in slis.items()}
    objectives: list[Objective] = []
    names: dict[str, str] = {}
    for doc, body in slos:
        before = len(problems)
        built = _slo(_Reader(doc, problems), body, indicators, default_window)
        if len(problems) != before:
            continue
        for o in built:
            if o.name in names:
                problems.append(doc.problem("metadata.name", f"objective {o.name!r} is already defined in "
                                                             f"{names[o.name]}"))
                continue
            names[o.name] = doc.where
            objectives.append(o)
    return objectives, problems


class _Reader:
    """Checks one document's fields, recording each problem with the document and the field path."""

    __slots__ = ("doc", "problems")

    def __init__(self, doc: Document, problems: list[Problem]) -> None:
        self.doc = doc
        self.problems = problems

    def problem(self, path: str, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def mapping(self, value: Any, path: str, required: bool = False) -> Mapping[str, Any] | None:
        if value is None:
            if required:
                self.problem(path, "is required")
            return None
        if not isinstance(value, Mapping):
            self.problem(path, f"must be a mapping, got {_kind(value)}")
            return None
        return value

    def keys(self, m: Mapping[str, Any], path: str, allowed: Sequence[str]) -> bool:
        ok = True
        for key in m:
            if key not in allowed:
                self.problem(_join(path, str(key)), f"unknown key (valid keys: {', '.join(allowed)})")
                ok = False
        return ok

    def string(self, m: Mapping[str, Any], key: str, path: str, required: bool = False) -> str | None:
        value = m.get(key)
        if value is None:
            if required:
                self.problem(_join(path, key), "is required")
            return None
        if not isinstance(value, str):
            self.problem(_join(path, key), f"must be a string, got {_kind(value)}")
            return None
        return value

    def number(self, m: Mapping[str, Any], key: str, path: str) -> float | None:
        value = m.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.problem(_join(path, key), f"must be a number, got {_kind(value)}")
            return None
        return float(value)

    def name(self, body: Mapping[str, Any], path: str) -> str | None:
        meta = self.mapping(body.get("metadata"), path, required=True)
        if meta is None:
            return None
        name = self.string(meta, "name", path, required=True)
        if name is None:
            return None
        if not _NAME_RE.match(name):
            self.problem(_join(path, "name"), f"must be 1 to 255 letters, digits or - . | / \\, starting and ending "
                                              f"with a letter or digit, got {name!r}")
            return None
        display = meta.get("displayName")
        if display is not None and not isinstance(display, str):
            self.problem(_join(path, "displayName"), f"must be a string, got {_kind(display)}")
        annotations = meta.get("annotations")
        if annotations is not None:
            ann = self.mapping(annotations, _join(path, "annotations"))
            if ann is not None:
                for k, v in ann.items():
                    if not isinstance(v, str):
                        self.problem(_join(_join(path, "annotations"), str(k)), f"must be a string, got {_kind(v)}")
        return name


def _slo(r: _Reader, body: Mapping[str, Any], slis: Mapping[str, tuple[Indicator, str] | None],
         default_window: float) -> list[Objective]:
    """The objectives of one SLO document. ``slis``: every SLI document, read (None: it has problems, which
    are reported at its own document)."""
    meta: Mapping[str, Any] = body["metadata"]
    name: str = meta["name"]
    spec = r.mapping(body.get("spec"), "spec", required=True)
    if spec is None:
        return []
    r.keys(spec, "spec", SLO_SPEC_KEYS)
    description = r.string(spec, "description", "spec") or ""
    if len(description) > MAX_DESCRIPTION:
        r.problem("spec.description", f"must be at most {MAX_DESCRIPTION} characters, has {len(description)}")
    service = r.string(spec, "service", "spec") or ""
    annotations: Mapping[str, Any] = meta.get("annotations") or {}

    method = spec.get("budgetingMethod", "Occurrences")
    if method != "Occurrences":
        r.problem("spec.budgetingMethod", f"only Occurrences is supported (good and bad signal spans are "
                                          f"counted one by one), got {method!r}")
    window = _time_window(r, spec.get("timeWindow"), default_window)

    has_inline, ref = spec.get("indicator") is not None, spec.get("indicatorRef")
    parsed: tuple[Indicator, str] | None = None
    if has_inline and ref is not None:
        r.problem("spec", "give indicator or indicatorRef, not both")
    elif has_inline:
        sli = r.mapping(spec.get("indicator"), "spec.indicator")
        if sli is not None:
            parsed = _indicator(r, sli, "spec.indicator", name)
    elif ref is not None:
        if not isinstance(ref, str):
            r.problem("spec.indicatorRef", f"must be a string, got {_kind(ref)}")
        elif ref not in slis:
            known = ", ".join(sorted(slis)) or "none"
            r.problem("spec.indicatorRef", f"no SLI named {ref!r} (defined: {known})")
        else:
            parsed = slis[ref]
    else:
        r.problem("spec", "needs indicator (an inline SLI) or indicatorRef (the name of an SLI)")

    raw_objectives = spec.get("objectives")
    if not isinstance(raw_objectives, list) or not raw_objectives:
        r.problem("spec.objectives", "is required: a list of at least one objective" if raw_objectives is None
                  else f"must be a non-empty list, got {_kind(raw_objectives)}")
        return []

    alerts = _alerts(r, annotations)
    share = _share(r, annotations)
    owner = annotations.get(OWNER_ANNOTATION)
    if owner is not None and (not isinstance(owner, str) or not owner.strip()):
        r.problem(f"metadata.annotations.{OWNER_ANNOTATION}", "must name a team")
    objectives: list[Objective] = []
    threshold = parsed is not None and parsed[1] == "threshold"
    if threshold and len(raw_objectives) != 1:
        r.problem("spec.objectives", f"a thresholdMetric takes exactly one objective, got {len(raw_objectives)}")
    for i, raw in enumerate(raw_objectives):
        path = f"spec.objectives[{i}]"
        o = r.mapping(raw, path, required=True)
        if o is None:
            continue
        r.keys(o, path, OBJECTIVE_KEYS)
        for key in ("indicator", "indicatorRef", "compositeWeight"):
            if key in o:
                r.problem(_join(path, key), "composite objectives are not supported: give the indicator in spec")
        for key in ("timeSliceTarget", "timeSliceWindow"):
            if key in o:
                r.problem(_join(path, key), "is for Timeslices budgeting, which is not supported")
        target = _target(r, o, path)
        display = r.string(o, "displayName", path) or ""
        if parsed is None or target is None:
            continue
        ind = _objective_threshold(r, o, path, *parsed)
        if ind is None:
            continue
        objectives.append(Objective(
            name=name if len(raw_objectives) == 1 else f"{name}-{i + 1}",
            display_name=str(meta.get("displayName") or name) + (f" ({display})" if display else ""),
            description=description,
            service=service or ind.selector.service,
            owner=owner.strip() if isinstance(owner, str) else "",
            indicator=ind,
            target=target,
            window=window,
            alerts=alerts,
            min_cause_share=share,
            source=r.doc.where,
        ))
    return objectives


def _time_window(r: _Reader, raw: Any, default: float) -> float:
    if raw is None:
        return default
    if not isinstance(raw, list) or len(raw) != 1:
        r.problem("spec.timeWindow", f"must be a list of exactly one window, got {_kind(raw)}")
        return default
    path = "spec.timeWindow[0]"
    tw = r.mapping(raw[0], path, required=True)
    if tw is None:
        return default
    r.keys(tw, path, ("duration", "isRolling", "calendar"))
    rolling = tw.get("isRolling", "calendar" not in tw)
    if rolling is not True or "calendar" in tw:
        r.problem(path, "only rolling windows are supported ({duration: 28d, isRolling: true}); calendar-aligned "
                        "windows are not")
    text = r.string(tw, "duration", path, required=True)
    if text is None:
        return default
    m = _SHORTHAND_RE.match(text)
    if m is None:
        r.problem(f"{path}.duration", f"must be a duration shorthand such as 28d, 4w or 12h, got {text!r}")
        return default
    n, unit = int(m.group(1)), m.group(2)
    if unit not in SECONDS:
        r.problem(f"{path}.duration", f"unit {unit!r} (months, quarters, years) has no fixed length: use d or w "
                                      f"(e.g. 30d, 13w)")
        return default
    seconds = float(n * SECONDS[unit])
    if seconds < 3600 or seconds > MAX_WINDOW:
        r.problem(f"{path}.duration", f"must be from 1h to 366d, got {text!r}")
        return default
    return seconds


def _target(r: _Reader, o: Mapping[str, Any], path: str) -> float | None:
    target = r.number(o, "target", path)
    percent = r.number(o, "targetPercent", path)
    if "target" in o and "targetPercent" in o:
        r.problem(path, "give target or targetPercent, not both")
        return None
    if target is None and percent is None:
        if "target" not in o and "targetPercent" not in o:
            r.problem(_join(path, "target"), "is required (or targetPercent)")
        return None
    if percent is not None:
        if not 0 < percent < 100:
            r.problem(_join(path, "targetPercent"), f"must be a number with 0 < targetPercent < 100, got {percent:g}")
            return None
        return percent / 100
    assert target is not None
    if not 0 < target < 1:
        r.problem(_join(path, "target"), f"must be a number with 0 < target < 1, got {target:g}")
        return None
    return target


def _objective_threshold(r: _Reader, o: Mapping[str, Any], path: str, ind: Indicator, metric: str,
                         ) -> Indicator | None:
    """A thresholdMetric's objective gives the latency threshold (op, value in ms); a ratioMetric's has none."""
    op, value = o.get("op"), o.get("value")
    if metric == "ratio":
        for key in ("op", "value"):
            if key in o:
                r.problem(_join(path, key), "is only for a thresholdMetric (a ratioMetric's latency threshold is "
                                            "metricSource.spec.latency_threshold)")
        return ind if "op" not in o and "value" not in o else None
    ok = True
    if op not in ("lt", "lte"):
        ok = False
        if op is None:
            r.problem(_join(path, "op"), "is required with a thresholdMetric: lt or lte")
        elif op in ("gt", "gte"):
            r.problem(_join(path, "op"), f"a latency objective is met below its threshold: use lt or lte, got {op!r}")
        else:
            r.problem(_join(path, "op"), f"must be lt or lte, got {op!r}")
    ms = r.number(o, "value", path)
    if ms is None:
        if value is None:
            r.problem(_join(path, "value"), "is required with a thresholdMetric: the latency threshold in "
                                            "milliseconds")
        return None
    if ms <= 0:
        r.problem(_join(path, "value"), f"must be a latency in milliseconds > 0, got {ms:g}")
        return None
    if not ok:
        return None
    return Indicator(ind.name, ind.selector, "latency", ms, op == "lte")


def _indicator(r: _Reader, sli: Mapping[str, Any], path: str, slo_name: str) -> tuple[Indicator, str] | None:
    """An SLI's ``spec`` (``path`` is where the SLI's metadata and spec stand) -> (indicator, "ratio" or
    "threshold")."""
    meta = sli.get("metadata")
    name = slo_name
    if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
        name = meta["name"]
    spec = r.mapping(sli.get("spec"), _join(path, "spec"), required=True)
    if spec is None:
        return None
    sp = _join(path, "spec")
    r.keys(spec, sp, ("description", "thresholdMetric", "ratioMetric"))
    ratio, threshold = spec.get("ratioMetric"), spec.get("thresholdMetric")
    if (ratio is None) == (threshold is None):
        r.problem(sp, "needs exactly one of ratioMetric and thresholdMetric")
        return None
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if threshold is not None:
        tp = _join(sp, "thresholdMetric")
        tm = r.mapping(threshold, tp)
        if tm is None:
            return None
        r.keys(tm, tp, ("metricSource",))
        src = _source(r, tm.get("metricSource"), _join(tp, "metricSource"))
        if src is None:
            return None
        sources.append((_join(tp, "metricSource.spec"), src))
        metric = "threshold"
    else:
        rp = _join(sp, "ratioMetric")
        rm = r.mapping(ratio, rp)
        if rm is None:
            return None
        r.keys(rm, rp, ("counter", "good", "bad", "total", "rawType", "raw"))
        for key in ("raw", "rawType"):
            if key in rm:
                r.problem(_join(rp, key), "precomputed ratios cannot be measured from spans: use good (or bad) and "
                                          "total")
        if "good" in rm and "bad" in rm:
            r.problem(rp, "give good or bad, not both")
        if "total" not in rm:
            r.problem(_join(rp, "total"), "is required")
        if "good" not in rm and "bad" not in rm:
            r.problem(_join(rp, "good"), "is required (or bad)")
        for key in ("good", "bad", "total"):
            if key not in rm:
                continue
            part = r.mapping(rm[key], _join(rp, key), required=True)
            if part is None:
                continue
            r.keys(part, _join(rp, key), ("metricSource",))
            src = _source(r, part.get("metricSource"), _join(rp, f"{key}.metricSource"))
            if src is not None:
                sources.append((_join(rp, f"{key}.metricSource.spec"), src))
        metric = "ratio"
    merged: dict[str, Any] = {}
    first: dict[str, str] = {}
    ok = True
    for spath, src in sources:
        for key, value in src.items():
            if key in merged and merged[key] != value:
                r.problem(_join(spath, key), f"differs from {first[key]}.{key} ({merged[key]!r}): good, bad and "
                                             f"total must describe the same spans")
                ok = False
            elif key not in merged:
                merged[key], first[key] = value, spath
    if not ok or len(sources) == 0:
        return None
    where = sources[0][0]
    selector = _selector(r, merged, first, where)
    kind = _sli_kind(r, merged, first, where, metric)
    if selector is None or kind is None:
        return None
    threshold_ms = 0.0
    if metric == "ratio" and kind == "latency":
        if "latency_threshold" not in merged:
            r.problem(_join(where, "latency_threshold"), "is required with sli: latency in a ratioMetric (e.g. 300ms)")
            return None
        try:
            threshold_ms = Duration.parse(merged["latency_threshold"]) * 1000.0
        except ValueError as e:
            r.problem(_join(first["latency_threshold"], "latency_threshold"), str(e))
            return None
        if threshold_ms <= 0:
            r.problem(_join(first["latency_threshold"], "latency_threshold"), "must be > 0")
            return None
    elif "latency_threshold" in merged:
        r.problem(_join(first["latency_threshold"], "latency_threshold"),
                  "is only for sli: latency in a ratioMetric (a thresholdMetric's threshold is the objective's "
                  "op and value)")
        return None
    return Indicator(name, selector, kind, threshold_ms, True), metric


def _source(r: _Reader, raw: Any, path: str) -> Mapping[str, Any] | None:
    ms = r.mapping(raw, path, required=True)
    if ms is None:
        return None
    r.keys(ms, path, ("type", "metricSourceRef", "spec"))
    kind = ms.get("type")
    if kind != SOURCE_TYPE:
        r.problem(_join(path, "type"), f"must be {SOURCE_TYPE} (this processor measures signal spans), got {kind!r}")
        return None
    spec = r.mapping(ms.get("spec"), _join(path, "spec"))
    if spec is None:
        return {} if "spec" not in ms else None
    if not r.keys(spec, _join(path, "spec"), SOURCE_KEYS):
        return None
    return spec


def _selector(r: _Reader, merged: Mapping[str, Any], first: Mapping[str, str], where: str) -> Selector | None:
    ok = True
    values: dict[str, str] = {}
    for key in ("service", "span_name", "span_name_regex"):
        if key in merged:
            v = merged[key]
            if not isinstance(v, str) or not v:
                r.problem(_join(first[key], key), f"must be a non-empty string, got {_kind(v)}")
                ok = False
            else:
                values[key] = v
    name, regex = values.get("span_name", ""), values.get("span_name_regex", "")
    if ok and not name and not regex:
        r.problem(_join(where, "span_name"), "is required (or span_name_regex): which spans are signal spans")
        ok = False
    if name and regex:
        r.problem(_join(first["span_name_regex"], "span_name_regex"), "give span_name or span_name_regex, not both")
        ok = False
    if regex:
        try:
            re.compile(regex)
        except re.error as e:
            r.problem(_join(first["span_name_regex"], "span_name_regex"), f"invalid regular expression: {e}")
            ok = False
    attributes: list[tuple[str, str]] = []
    if "attributes" in merged:
        apath = _join(first["attributes"], "attributes")
        raw = r.mapping(merged["attributes"], apath)
        if raw is None:
            ok = False
        else:
            for k, v in raw.items():
                if not isinstance(k, str) or not k:
                    r.problem(apath, f"attribute keys must be non-empty strings, got {_kind(k)}")
                    ok = False
                elif isinstance(v, bool):
                    attributes.append((k, "true" if v else "false"))
                elif isinstance(v, str | int | float):
                    attributes.append((k, str(v)))
                else:
                    r.problem(_join(apath, k), f"must be a string, number or boolean, got {_kind(v)}")
                    ok = False
    if not ok:
        return None
    return Selector(values.get("service", ""), name, regex, tuple(sorted(attributes)))


def _sli_kind(r: _Reader, merged: Mapping[str, Any], first: Mapping[str, str], where: str, metric: str,
              ) -> SliKind | None:
    kind = merged.get("sli", "latency" if metric == "threshold" else "availability")
    if kind not in ("availability", "latency"):
        r.problem(_join(first.get("sli", where), "sli"), f"must be availability or latency, got {kind!r}")
        return None
    if metric == "threshold" and kind != "latency":
        r.problem(_join(first["sli"], "sli"), "a thresholdMetric measures latency: sli must be latency (or left out)")
        return None
    return "latency" if kind == "latency" else "availability"


def parse_alerts(text: str) -> tuple[BurnAlertSpec, ...]:
    """``"page 14.4x 1h/5m, ticket 1x 3d/6h"`` -> alert specs; raises ValueError naming the bad item."""
    out: list[BurnAlertSpec] = []
    for item in text.split(","):
        m = _ALERT_RE.match(item)
        if m is None:
            raise ValueError(f"{item.strip()!r} is not '<severity> <rate>x <long>/<short>' (e.g. page 14.4x 1h/5m)")
        severity, rate = m.group(1), float(m.group(2))
        long_w, short_w = (int(t[:-1]) * SECONDS[t[-1]] for t in (m.group(3), m.group(4)))
        if rate <= 0:
            raise ValueError(f"{item.strip()!r}: the burn rate must be > 0")
        if short_w >= long_w:
            raise ValueError(f"{item.strip()!r}: the short window must be shorter than the long one")
        out.append(BurnAlertSpec(severity, rate, float(long_w), float(short_w)))
    return tuple(out)


def _alerts(r: _Reader, annotations: Mapping[str, Any]) -> tuple[BurnAlertSpec, ...] | None:
    text = annotations.get(ALERTS_ANNOTATION)
    if not isinstance(text, str):
        return None
    try:
        return parse_alerts(text)
    except ValueError as e:
        r.problem(f"metadata.annotations.{ALERTS_ANNOTATION}", str(e))
        return None


def _share(r: _Reader, annotations: Mapping[str, Any]) -> float | None:
    text = annotations.get(SHARE_ANNOTATION)
    if not isinstance(text, str):
        return None
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        r.problem(f"metadata.annotations.{SHARE_ANNOTATION}", f"must be a number with 0 < share <= 1, got {text!r}")
        return None
    return share


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
