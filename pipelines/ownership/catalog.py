"""Backstage catalog files: multi-document YAML with ``Component`` and ``Group`` entities.

Only what ownership needs is read:

* ``kind: Component``: ``metadata.name`` (the ``service.name`` it describes), ``spec.owner``
  (``group:payments``, ``group:default/payments`` or ``payments``), ``spec.system`` and the
  ``pagerduty.com/integration-key`` annotation.
* ``kind: Group``: ``metadata.name``, the same annotation, ``spec.parent`` and ``spec.children``.

Other kinds (System, API, Resource, User, Location...) are ignored. A document that is invalid is
reported as a :class:`CatalogProblem` with its 1-based document number and skipped; the rest of the
file still counts. A file that is not valid YAML at all raises :class:`CatalogSyntaxError`, so the
caller can keep that file's last good content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from collector.errors import TraceTriageError

PAGERDUTY_ANNOTATION = "pagerduty.com/integration-key"
MAX_FILE_BYTES = 8 * 1024 * 1024  # a catalog file larger than this is refused, not read

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CatalogError(TraceTriageError, ValueError):
    """The catalog cannot be used (no file loadable at startup)."""


class CatalogSyntaxError(TraceTriageError):
    """A catalog file is not readable as YAML (its earlier content is kept)."""


def entity_ref(ref: str, default_kind: str = "component") -> str:
    """A Backstage entity reference as ``kind:name``, lowercased and without the default namespace:
    ``Component:default/Orders`` -> ``component:orders``; ``orders`` -> ``component:orders``."""
    kind, sep, rest = ref.strip().partition(":")
    if not sep:
        kind, rest = default_kind, ref.strip()
    namespace, slash, name = rest.partition("/")
    if slash and namespace.lower() == "default":
        rest = name
    return f"{kind.strip().lower()}:{rest.strip().lower()}"


def normalise_team(ref: str) -> str:
    """A Backstage owner reference as a team name: ``group:default/payments`` -> ``payments``.

    The kind (``group:``, ``user:``) and namespace (``default/``) are dropped, whitespace stripped and
    the name lowercased (Backstage compares entity references case-insensitively).
    """
    name = ref.strip()
    kind, sep, rest = name.partition(":")
    if sep and "/" not in kind:
        name = rest
    name = name.rpartition("/")[2]
    return name.strip().lower()


@dataclass(frozen=True, slots=True)
class Component:
    name: str  # metadata.name as written
    owner: str  # normalised team name
    system: str
    pagerduty_key: str | None
    file: str
    document: int  # 1-based
    depends_on: tuple[str, ...] = ()  # spec.dependsOn as entity references (``component:orders``)
    type: str = ""  # spec.type
    lifecycle: str = ""  # spec.lifecycle


@dataclass(frozen=True, slots=True)
class Group:
    name: str  # normalised
    pagerduty_key: str | None
    parent: str  # normalised, "" if none
    children: tuple[str, ...]  # normalised
    file: str
    document: int


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    file: str
    document: int  # 1-based; 0 = the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: document {self.document}" if self.document else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class CatalogFile:
    path: str
    components: tuple[Component, ...]
    groups: tuple[Group, ...]
    problems: tuple[CatalogProblem, ...]


def read_catalog(path: str) -> CatalogFile:
    """Read and parse one file. Raises ``OSError`` (unreadable, too large) or :class:`CatalogSyntaxError`."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"{path}: larger than {MAX_FILE_BYTES} bytes, not read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CatalogSyntaxError(f"{path}: not UTF-8 text ({e})") from e
    return parse_catalog(text, path)


def parse_catalog(text: str, path: str) -> CatalogFile:
    """Parse the YAML documents of one file; see the module docstring."""
    components: list[Component] = []
    groups: list[Group] = []
    problems: list[CatalogProblem] = []
    seen: dict[tuple[str, str], int] = {}
    number = 0
    try:
        for number, doc in enumerate(yaml.load_all(text, Loader=_Loader), start=1):
            if doc is None:
                continue  # an empty document, e.g. after a trailing ---
            try:
                entity = _entity(doc, path, number)
            except _Invalid as e:
                problems.append(CatalogProblem(path, number, str(e)))
                continue
            if entity is None:
                continue
            kind = "Component" if isinstance(entity, Component) else "Group"
            key = (kind, entity.name.lower())
            if key in seen:
                problems.append(CatalogProblem(
                    path, number, f"{kind} {entity.name!r} already defined in document {seen[key]}; ignored"))
                continue
            seen[key] = number
            if isinstance(entity, Component):
                components.append(entity)
            else:
                groups.append(entity)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise CatalogSyntaxError(f"{path}: document {number + 1}: invalid YAML{line}: {problem}") from e
    return CatalogFile(path, tuple(components), tuple(groups), tuple(problems))


class _Invalid(Exception):
    pass


def _entity(doc: Any, path: str, number: int) -> Component | Group | None:
    if not isinstance(doc, Mapping):
        raise _Invalid(f"must be a mapping with apiVersion, kind, metadata and spec, got {type(doc).__name__}")
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        raise _Invalid("kind is missing or not a string")
    if kind not in ("Component", "Group"):
        return None
    metadata = _mapping(doc, "metadata")
    spec = _mapping(doc, "spec")
    name = metadata.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _Invalid(f"{kind}: metadata.name is missing or not a non-empty string")
    name = name.strip()
    key = _pagerduty_key(metadata, kind, name)
    if kind == "Component":
        owner = spec.get("owner")
        if not isinstance(owner, str) or not normalise_team(owner):
            raise _Invalid(f"Component {name!r}: spec.owner must be a string such as group:payments, got {owner!r}")
        system = spec.get("system", "")
        if not isinstance(system, str):
            raise _Invalid(f"Component {name!r}: spec.system must be a string, got {system!r}")
        depends_on = spec.get("dependsOn", [])
        if depends_on is None:
            depends_on = []
        if not isinstance(depends_on, list) or not all(isinstance(d, str) and d.strip() for d in depends_on):
            raise _Invalid(f"Component {name!r}: spec.dependsOn must be a list of entity references such as "
                           f"component:orders or resource:orders-db")
        kind_, lifecycle = spec.get("type", ""), spec.get("lifecycle", "")
        return Component(name, normalise_team(owner), system, key, path, number,
                         tuple(entity_ref(d) for d in depends_on), kind_ if isinstance(kind_, str) else "",
                         lifecycle if isinstance(lifecycle, str) else "")
    parent = spec.get("parent", "")
    if not isinstance(parent, str):
        raise _Invalid(f"Group {name!r}: spec.parent must be a string, got {parent!r}")
    children = spec.get("children", [])
    if children is None:
        children = []
    if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
        raise _Invalid(f"Group {name!r}: spec.children must be a list of strings")
    return Group(normalise_team(name), key, normalise_team(parent), tuple(normalise_team(c) for c in children),
                 path, number)


def _mapping(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Invalid(f"{key} must be a mapping, got {type(value).__name__}")
    return value


def _pagerduty_key(metadata: Mapping[str, Any], kind: str, name: str) -> str | None:
    annotations = metadata.get("annotations")
    if annotations is None:
        return None
    if not isinstance(annotations, Mapping):
        raise _Invalid(f"{kind} {name!r}: metadata.annotations must be a mapping")
    key = annotations.get(PAGERDUTY_ANNOTATION)
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip():
        raise _Invalid(f"{kind} {name!r}: annotation {PAGERDUTY_ANNOTATION} must be a non-empty string")
    return key.strip()
