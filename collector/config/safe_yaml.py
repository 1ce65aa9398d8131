"""Reading config YAML that cannot knock the process over.

A config file is read whole and refused before parsing when it is larger than :data:`MAX_BYTES`. It must
be UTF-8 (a UTF-8 byte-order mark is dropped); UTF-16 with a byte-order mark is decoded, anything else
is refused with the place of the first bad byte. Before a single Python object is built, one pass over
libyaml's event stream (no recursion, constant memory) refuses nesting deeper than :data:`MAX_DEPTH`,
aliases that would expand to more than :data:`MAX_ALIAS_NODES` nodes (the "billion laughs"), and an
alias inside the node it names (a cycle). Building the document then refuses duplicate keys, naming both
lines.

Scalars are resolved as the OTel Collector's YAML library (yaml.v3, the YAML 1.2 core schema) resolves
them, not as PyYAML's YAML 1.1 default does: ``on``, ``yes``, ``no`` and ``off`` are strings, ``1:30`` is a
string and dates stay strings; ``true``/``false``, ``null``/``~``, decimal, ``0x``, ``0o``, ``0b`` and
``1_000`` integers and floats are typed.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import BaseResolver

MAX_BYTES = 10 * 1024 * 1024
"""Largest config file read (10 MiB); a config is a few kilobytes."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and lists; real configs stay under 20."""
MAX_ALIAS_NODES = 100_000
"""Most nodes that aliases (``*name``) may add to a document when expanded."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLProblem(Exception):
    """A config text that is not acceptable YAML; ``line`` and ``column`` are 1-based when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        where = f"line {self.line}" + (f", column {self.column}" if self.column is not None else "")
        return f"{where}: {self.message}"


# -- scalars as yaml.v3 reads them -------------------------------------------------------------------------

class _Resolver(BaseResolver):
    """Implicit tags of the YAML 1.2 core schema, as yaml.v3 applies them."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+))$"), list("-+0123456789"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver(_MERGE_TAG, re.compile(r"^(?:<<)$"), ["<"])

_LEGACY_OCTAL = re.compile(r"^[-+]?0[0-7]+$")


class _Constructor(SafeConstructor):
    """SafeConstructor that refuses duplicate keys and reads integers as yaml.v3 does."""

    yaml_constructors = dict(SafeConstructor.yaml_constructors)

    def construct_yaml_int(self, node: Node) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
        if _LEGACY_OCTAL.match(text):
            return int(text, 8)
        try:
            return int(text, 0)
        except ValueError:
            return int(text, 10)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # unhashable: reported by the base class
            if first is not key_node:
                raise ConstructorError(
                    None, None,
                    f"duplicate key {key!r} (first given at line {first.start_mark.line + 1}, "
                    f"again at line {key_node.start_mark.line + 1})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)  # type: ignore[type-var]


if yaml.__with_libyaml__:  # libyaml's parser: fast, and it keeps no Python stack however deep the document
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _Loader(CParser, _Constructor, _Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Constructor.__init__(self)
            _Resolver.__init__(self)
else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, Composer, _Constructor, _Resolver):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _Constructor.__init__(self)
            _Resolver.__init__(self)


# -- the checks before building ----------------------------------------------------------------------------

def _place(mark: Any) -> tuple[int | None, int | None]:
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


class _Scan:
    """Nesting depth, alias expansion and alias cycles, counted over the event stream."""

    __slots__ = ("expanded", "open_anchors", "sizes", "stack")

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}  # anchor -> nodes its node expands to
        self.stack: list[tuple[str | None, list[int]]] = []  # open collections: anchor, [nodes so far]
        self.open_anchors: dict[str, int] = {}
        self.expanded = 0

    def _add(self, size: int) -> None:
        if self.stack:
            self.stack[-1][1][0] += size

    def event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                self.sizes[event.anchor] = 1
            self._add(1)
        elif isinstance(event, yaml.AliasEvent):
            name = event.anchor or ""
            if self.open_anchors.get(name):
                raise YAMLProblem(f"alias *{name} refers to a node that contains it (a cycle)",
                                  *_place(event.start_mark))
            size = self.sizes.get(name)
            if size is None:
                raise YAMLProblem(f"alias *{name} is not defined (no &{name} before it)", *_place(event.start_mark))
            self.expanded += size
            if self.expanded > MAX_ALIAS_NODES:
                raise YAMLProblem(
                    f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes (a YAML alias bomb?); "
                    f"refused at alias *{name}", *_place(event.start_mark))
            self._add(size)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise YAMLProblem(f"nested more than {MAX_DEPTH} levels deep", *_place(event.start_mark))
            if event.anchor:
                self.open_anchors[event.anchor] = self.open_anchors.get(event.anchor, 0) + 1
            self.stack.append((event.anchor, [1]))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, (size,) = self.stack.pop()
            if anchor:
                self.open_anchors[anchor] -= 1
                self.sizes[anchor] = size
            self._add(size)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.sizes.clear()


def _scan(text: str) -> None:
    """One pass over libyaml's event stream, before anything is built (no recursion, little memory)."""
    scan = _Scan()
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if event is not None:
                scan.event(event)
    finally:
        loader.dispose()


def _load(text: str) -> Any:
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(e: yaml.YAMLError) -> YAMLProblem:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    if context and getattr(e, "problem", None) and "duplicate key" not in problem:
        problem = f"{problem} ({context})"
    return YAMLProblem(problem, *_place(mark))


def parse(text: str) -> Any:
    """The one document in ``text``. Raises :class:`YAMLProblem` naming the line and column."""
    try:
        _scan(text)
        return _load(text)
    except yaml.YAMLError as e:
        raise _yaml_problem(e) from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise YAMLProblem(f"nested too deeply (the limit is {MAX_DEPTH} levels)") from None


def parse_scalar(text: str) -> Any:
    """What a plain YAML scalar means (``4317`` -> 4317, ``true`` -> True, ``on`` -> ``'on'``): the type an
    environment variable's value takes when it is a whole config value, as in otelcol."""
    if len(text) > MAX_BYTES:
        return text
    try:
        return parse(text)
    except YAMLProblem:
        return text


# -- bytes to text ----------------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """Config bytes as text: UTF-8 (a byte-order mark is dropped), or UTF-16 with a byte-order mark.
    Raises :class:`YAMLProblem` for anything else, naming the place of the first bad byte."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise YAMLProblem("the file is UTF-32; save it as UTF-8")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise YAMLProblem(f"the file starts with a UTF-16 byte-order mark but is not valid UTF-16: {e.reason}; "
                              "save it as UTF-8") from None
    if b"\x00" in data:
        line, column = _position(data, data.index(b"\x00"))
        raise YAMLProblem("the file contains NUL bytes (UTF-16 or UTF-32 without a byte-order mark, or not "
                          "text at all); save it as UTF-8", line, column)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = _position(data, e.start)
        raise YAMLProblem(f"not UTF-8: byte 0x{data[e.start]:02x} cannot be decoded ({e.reason}); save the file "
                          "as UTF-8", line, column) from None


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


__all__ = ["MAX_ALIAS_NODES", "MAX_BYTES", "MAX_DEPTH", "YAMLProblem", "decode", "parse", "parse_scalar"]
