"""Tracetest's span selectors.

::

    selector  := "" | path ("," path)*                 (empty: every span; "," is OR, results merged)
    path      := segment (" " segment)*                (a later segment: descendants of the earlier's spans)
    segment   := "span[" filter ((" " | ",") filter)* "]" pseudo?
    filter    := KEY ("=" | "contains") VALUE          (all must hold: AND)
    VALUE     := "double-quoted" | 'single-quoted' | number | true | false
    pseudo    := ":first" | ":last" | ":nth_child(" N ")"

``KEY`` is an attribute of the span (its own or its resource's), ``name``, ``kind`` or a ``tracetest.span.*``
pseudo-attribute. ``=`` compares the attribute's text with the value's; ``contains`` looks for the value's text
in it; a span without the attribute matches neither. As in Tracetest, a descendant is any span below (not
only a child), and a pseudo-class picks among its segment's matches in trace order (1-based ``nth_child``;
out of range selects nothing). ``span`` and ``span[]`` are errors, as in Tracetest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from pipelines.trace_tests.spans import TestSpan, TestTrace, Value

NUMBER_TEXT = re.compile(r"^-?\d+(?:\.\d+)?$")


class SelectorError(ValueError):
    """A selector that cannot be parsed or uses what is not supported; the message says where."""


def text_of(value: Value) -> str:
    """An attribute value as Tracetest compares it: as text (booleans ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class Filter:
    key: str
    op: str  # "=" or "contains"
    value: str  # as text

    def matches(self, span: TestSpan) -> bool:
        actual = span.get(self.key)
        if actual is None:
            return False
        text = actual if type(actual) is str else text_of(actual)
        return text == self.value if self.op == "=" else self.value in text

    def holds_for(self, actual: Value) -> bool:
        """Whether a span whose attribute is ``actual`` matches (``matches`` with the value at hand)."""
        text = actual if type(actual) is str else text_of(actual)
        return text == self.value if self.op == "=" else self.value in text

    def __str__(self) -> str:
        return f'{self.key}{"=" if self.op == "=" else " contains "}"{self.value}"'


@dataclass(frozen=True, slots=True)
class Segment:
    filters: tuple[Filter, ...]
    pseudo: str = ""  # "", "first", "last", "nth_child"
    nth: int = 0

    def matches(self, span: TestSpan) -> bool:
        for f in self.filters:  # noqa: SIM110 (a loop: no generator per span on the hot path)
            if not f.matches(span):
                return False
        return True

    def pick(self, spans: list[TestSpan]) -> list[TestSpan]:
        if not self.pseudo:
            return spans
        if not spans:
            return spans
        if self.pseudo == "first":
            return spans[:1]
        if self.pseudo == "last":
            return spans[-1:]
        return [spans[self.nth - 1]] if 1 <= self.nth <= len(spans) else []


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    paths: tuple[tuple[Segment, ...], ...]  # empty: every span

    def select(self, trace: TestTrace) -> list[TestSpan]:
        """The selected spans in trace order, each once."""
        paths = self.paths
        if not paths:
            return list(trace.ordered)
        if len(paths) == 1 and len(paths[0]) == 1 and not paths[0][0].pseudo:
            seg = paths[0][0]  # the common case: no tree needed unless several spans are selected
            found = [s for s in trace.spans if seg.matches(s)]
            if len(found) > 1:
                found.sort(key=trace.rank)
            return found
        chosen: dict[int, TestSpan] = {}
        for path in self.paths:
            for s in _select_path(trace.ordered, path, trace.rank):
                chosen.setdefault(id(s), s)
        if len(self.paths) == 1:
            return list(chosen.values())
        return sorted(chosen.values(), key=trace.rank)

    def first_segment_filters(self) -> Iterator[Filter]:
        """The filters every span the selector can select below must have an ancestor (or itself) matching:
        those of each path's first segment (for a cheap "may this trace match" test)."""
        for path in self.paths:
            yield from path[0].filters

    def __str__(self) -> str:
        return self.text


def _select_path(ordered: Sequence[TestSpan], path: tuple[Segment, ...], rank: Callable[[TestSpan], int]
                 ) -> list[TestSpan]:
    current = path[0].pick([s for s in ordered if path[0].matches(s)])
    for seg in path[1:]:
        if not current:
            return []
        found: list[TestSpan] = []
        seen: set[int] = set()
        for parent in current:
            stack = list(reversed(parent.children))
            while stack:
                s = stack.pop()
                if id(s) in seen:
                    continue
                seen.add(id(s))
                if seg.matches(s):
                    found.append(s)
                stack.extend(reversed(s.children))
        found.sort(key=rank)
        current = seg.pick(found)
    return current


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<span>span(?![\w.\-/]))
  | (?P<lb>\[) | (?P<rb>\]) | (?P<comma>,)
  | (?P<pseudo>:(?P<pname>[A-Za-z_-]+)(?:\((?P<parg>[^)]*)\))?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>=|contains(?![\w.\-/]))
  | (?P<num>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<word>[A-Za-z_][\w.\-/]*)
""", re.VERBOSE)


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def parse_selector(text: str) -> Selector:
    """Parse a Tracetest selector; raises :class:`SelectorError` naming what is wrong or unsupported."""
    if not isinstance(text, str):
        raise SelectorError(f"a selector is text, not {type(text).__name__}")
    src = text.strip()
    if not src:
        return Selector(text, ())
    toks = _tokens(src)
    paths: list[tuple[Segment, ...]] = []
    i = 0
    segments: list[Segment] = []
    while i < len(toks):
        kind, val, pos = toks[i]
        if kind == "ws":
            i += 1
            continue
        if kind == "comma":
            if not segments:
                raise SelectorError(f"{src!r}: ',' at {pos} has no selector before it")
            paths.append(tuple(segments))
            segments = []
            i += 1
            continue
        if kind != "span":
            raise SelectorError(f"{src!r}: expected 'span[...]' at {pos}, found {val!r}")
        seg, i = _segment(src, toks, i + 1)
        segments.append(seg)
    if not segments:
        raise SelectorError(f"{src!r}: ends with ',' (no selector after it)")
    paths.append(tuple(segments))
    return Selector(text, tuple(paths))


def _tokens(src: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise SelectorError(f"{src!r}: unexpected {src[pos]!r} at {pos}")
        kind = m.lastgroup or ""
        if kind in ("pname", "parg"):
            kind = "pseudo"
        out.append((kind, m.group(0), pos))
        pos = m.end()
    return out


def _segment(src: str, toks: list[tuple[str, str, int]], i: int) -> tuple[Segment, int]:
    if i >= len(toks) or toks[i][0] != "lb":
        where = toks[i][2] if i < len(toks) else len(src)
        raise SelectorError(f"{src!r}: 'span' must be followed by '[' with at least one filter (at {where}); "
                            "an empty selector \"\" selects every span")
    i += 1
    filters: list[Filter] = []
    while True:
        while i < len(toks) and toks[i][0] in ("ws", "comma"):
            i += 1
        if i >= len(toks):
            raise SelectorError(f"{src!r}: '[' is not closed")
        kind, val, pos = toks[i]
        if kind == "rb":
            i += 1
            break
        if kind not in ("word", "span"):
            raise SelectorError(f"{src!r}: expected an attribute name at {pos}, found {val!r}")
        key = val
        i += 1
        while i < len(toks) and toks[i][0] == "ws":
            i += 1
        if i >= len(toks) or toks[i][0] != "op":
            found = toks[i][1] if i < len(toks) else "the end"
            raise SelectorError(f"{src!r}: after {key!r} expected '=' or 'contains', found {found!r} (other "
                                "operators are not supported)")
        op = toks[i][1]
        i += 1
        while i < len(toks) and toks[i][0] == "ws":
            i += 1
        if i >= len(toks):
            raise SelectorError(f"{src!r}: {key} {op} has no value")
        vkind, vtext, vpos = toks[i]
        if vkind == "str":
            value = _unquote(vtext)
        elif vkind == "num":
            value = text_of(float(vtext)) if "." in vtext else str(int(vtext))
        elif vkind == "word" and vtext in ("true", "false"):
            value = vtext
        else:
            raise SelectorError(f"{src!r}: the value of {key} at {vpos} must be a quoted string, a number, true "
                                f"or false, not {vtext!r}")
        filters.append(Filter(key, "=" if op == "=" else "contains", value))
        i += 1
    if not filters:
        raise SelectorError(f"{src!r}: 'span[]' has no filter (an empty selector \"\" selects every span)")
    pseudo, nth = "", 0
    if i < len(toks) and toks[i][0] == "pseudo":
        m = _TOKEN.match(toks[i][1])
        assert m is not None
        name, arg = m.group("pname"), m.group("parg")
        if name in ("first", "last") and arg is None:
            pseudo = name
        elif name == "nth_child" and arg is not None and arg.strip().isdigit():
            pseudo, nth = name, int(arg.strip())
        else:
            raise SelectorError(f"{src!r}: pseudo-class {toks[i][1]!r} is not supported (supported: :first, "
                                ":last, :nth_child(N))")
        i += 1
    # AND: the cheapest test first (the span name is at hand; other attributes may need decoding)
    filters.sort(key=lambda f: f.key not in ("name", "tracetest.span.name"))
    return Segment(tuple(filters), pseudo, nth), i
