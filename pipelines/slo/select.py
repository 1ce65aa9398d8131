"""Finding the signal spans of objectives in a trace, from its wire bytes.

Most spans are not signal spans, and most traces pass without a span being decoded:

* The spans of a trace are grouped by origin (resource and scope). An origin whose ``service.name`` no
  selector asks for is skipped whole (which selectors an origin can match is remembered per origin).
* A selector with ``span_name`` looks for the name's bytes as a span encodes them (field 5: ``2a``,
  the length, the UTF-8 name); only the spans containing them are decoded, and checked exactly.
* A selector with ``span_name_regex`` reads each span's name from its header (``trace_id``, ``span_id``,
  ``trace_state``, ``parent_span_id``, ``name`` come first in the canonical encoding); only the spans
  whose name matches are decoded. A header that is not canonical is decoded.
* Attribute matchers are checked on the decoded span.

A trace whose spans a stage before has decoded (``Trace.decoded``) is read from its decoded spans.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from collector.traces import Origin, Trace
from collector.wire import encode_varint, entry_span, read_varint, span_entries
from pipelines.slo.model import Selector

MAX_ORIGINS = 4096  # origins whose selectors are remembered; beyond: forgotten and found again


def attribute_text(v: AnyValue) -> str:
    """An attribute value as a selector compares it: strings as they are, booleans ``true``/``false``,
    numbers as Python writes them; arrays, maps and bytes as ``""``."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        return str(v.double_value)
    return ""


class SpanMatcher:
    """One selector, compiled."""

    __slots__ = ("attributes", "name", "needle", "regex", "service")

    def __init__(self, selector: Selector) -> None:
        self.service = selector.service
        self.name = selector.span_name
        self.regex = re.compile(selector.span_name_regex) if selector.span_name_regex else None
        raw = self.name.encode()
        self.needle = b"\x2a" + encode_varint(len(raw)) + raw if self.name else None
        self.attributes = dict(selector.attributes)

    def wants(self, service: str) -> bool:
        return not self.service or self.service == service

    def name_matches(self, name: str) -> bool:
        if self.regex is not None:
            return self.regex.search(name) is not None
        return name == self.name

    def matches(self, span: Span) -> bool:
        """The span's name and attributes match (its service was checked by :meth:`wants`)."""
        if not self.name_matches(span.name):
            return False
        want = self.attributes
        if not want:
            return True
        found = 0
        for kv in span.attributes:
            value = want.get(kv.key)
            if value is not None:
                if attribute_text(kv.value) != value:
                    return False
                found += 1
        return found == len(want)


class SignalFinder:
    """The signal spans of a trace for a list of selectors: ``find(trace)`` -> [(selector index, span)]."""

    __slots__ = ("_by_origin", "matchers")

    def __init__(self, selectors: Sequence[Selector]) -> None:
        self.matchers = tuple(SpanMatcher(s) for s in selectors)
        self._by_origin: dict[Origin, tuple[int, ...]] = {}

    def _for(self, origin: Origin) -> tuple[int, ...]:
        found = self._by_origin.get(origin)
        if found is None:
            service = origin.service_name
            found = tuple(i for i, m in enumerate(self.matchers) if m.wants(service))
            if len(self._by_origin) >= MAX_ORIGINS:
                self._by_origin.clear()
            self._by_origin[origin] = found
        return found

    def find(self, trace: Trace) -> list[tuple[int, Span]]:
        out: list[tuple[int, Span]] = []
        if trace.decoded:
            for g in trace.groups():
                wanted = self._for(g.origin)
                if wanted:
                    for span in g.scope_spans.spans:
                        out.extend((i, span) for i in wanted if self.matchers[i].matches(span))
            return out
        for origin, chunk in trace.chunks.items():
            wanted = self._for(origin)
            if wanted:
                self._scan(bytes(chunk), wanted, out)
        return out

    def _scan(self, data: bytes, wanted: tuple[int, ...], out: list[tuple[int, Span]]) -> None:
        matchers = self.matchers
        at: list[int] | None = None
        spans: dict[int, Span] = {}
        for i in wanted:
            m = matchers[i]
            needle = m.needle
            if needle is not None:
                h = data.find(needle)
                if h < 0:
                    continue
            if at is None:
                at = span_entries(data)
                if at is None:  # a span of 16 KiB or more: decode the whole chunk
                    for span in ScopeSpans.FromString(data).spans:
                        out.extend((k, span) for k in wanted if matchers[k].matches(span))
                    return
            if needle is not None:
                candidates = _entries_with(data, at, needle, h)
            else:
                candidates = [j for j in range(len(at) - 1) if _name_may_match(m, data, at, j)]
            for j in candidates:
                span = spans.get(j)
                if span is None:
                    span = spans[j] = Span.FromString(entry_span(data, at, j))
                if m.matches(span):
                    out.append((i, span))


def _entries_with(data: bytes, at: list[int], needle: bytes, h: int) -> list[int]:
    """Entries containing ``needle``, from the first hit ``h`` on (each entry once)."""
    out: list[int] = []
    while h >= 0:
        j = bisect_right(at, h) - 1
        out.append(j)
        h = data.find(needle, at[j + 1])
    return out


def _name_may_match(m: SpanMatcher, data: bytes, at: list[int], j: int) -> bool:
    """Entry ``j``'s name, read from a canonical header, matches (True when the header is not canonical:
    the span is decoded and checked)."""
    i = at[j]
    k = i + 2 if data[i + 1] < 0x80 else i + 3
    e = at[j + 1]
    if e - k < 30 or data[k] != 0x0A or data[k + 1] != 0x10 or data[k + 18] != 0x12 or data[k + 19] != 0x08:
        return True
    p = k + 28
    if data[p] == 0x1A:
        n, p = read_varint(data, p + 1)
        p += n
    if p < e and data[p] == 0x22:
        p += 2 + data[p + 1]
    if p >= e or data[p] != 0x2A:
        return m.name_matches("")  # no name field: the empty name
    n, p = read_varint(data, p + 1)
    try:
        name = data[p:p + n].decode()
    except UnicodeDecodeError:
        return True
    return m.name_matches(name)
