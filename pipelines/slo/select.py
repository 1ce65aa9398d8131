"""Finding the signal spans of objectives in a trace, from its wire bytes.

Most spans are not signal spans, and most signal spans are measured without being decoded:

* The spans of a trace are grouped by origin (resource and scope). An origin whose ``service.name`` no
  selector asks for is skipped whole (which selectors an origin can match is remembered per origin).
* A selector with ``span_name`` looks for the name's bytes as a span encodes them (field 5: ``2a``,
  the length, the UTF-8 name). A selector with ``span_name_regex`` reads the name of every span of the
  origin.
* A span's id, name, start and end are read from its header: ``trace_id``, ``span_id``, ``trace_state``,
  ``parent_span_id``, ``name``, ``kind``, ``start_time_unix_nano``, ``end_time_unix_nano`` come first, in
  that order, in the canonical encoding every OTLP SDK writes. A span whose header is not canonical is
  decoded instead, and so is a span that an attribute matcher must look at. The caller decodes the
  others only when it needs their status or attributes (:meth:`Signal.span`).

A trace whose spans a stage before has decoded (``Trace.decoded``) is read from its decoded spans.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from collections.abc import Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from collector.traces import Origin, Trace
from collector.wire import encode_varint, read_varint, span_entries
from pipelines.slo.model import Selector

MAX_ORIGINS = 4096  # origins whose selectors are remembered; beyond: forgotten and found again
_TIMES = struct.Struct("<QxQ").unpack_from  # start (fixed64), the end field's tag, end (fixed64)


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


class Signal:
    """One signal span of one selector: its id and times, and its decoded span (decoded on first use)."""

    __slots__ = ("_span", "end", "index", "raw", "span_id", "start")

    def __init__(self, index: int, raw: bytes, span_id: bytes, start: int, end: int, span: Span | None) -> None:
        self.index = index  # the selector's
        self.raw = raw  # the span's bytes (b"" when decoded already)
        self.span_id = span_id
        self.start = start
        self.end = end
        self._span = span

    def span(self) -> Span:
        s = self._span
        if s is None:
            s = self._span = Span.FromString(self.raw)
        return s

    def again(self, index: int) -> Signal:
        """The same span, as another selector's signal (decoded once for both)."""
        return Signal(index, self.raw, self.span_id, self.start, self.end, self._span)


class SpanMatcher:
    """One selector, compiled."""

    __slots__ = ("attributes", "name", "name_bytes", "needle", "regex", "service")

    def __init__(self, selector: Selector) -> None:
        self.service = selector.service
        self.name = selector.span_name
        self.regex = re.compile(selector.span_name_regex) if selector.span_name_regex else None
        self.name_bytes = self.name.encode()
        self.needle = b"\x2a" + encode_varint(len(self.name_bytes)) + self.name_bytes if self.name else None
        self.attributes = dict(selector.attributes)

    def wants(self, service: str) -> bool:
        return not self.service or self.service == service

    def name_matches(self, name: str) -> bool:
        if self.regex is not None:
            return self.regex.search(name) is not None
        return name == self.name

    def attributes_match(self, span: Span) -> bool:
        want = self.attributes
        found = 0
        for kv in span.attributes:
            value = want.get(kv.key)
            if value is not None:
                if attribute_text(kv.value) != value:
                    return False
                found += 1
        return found == len(want)

    def matches(self, span: Span) -> bool:
        """The span's name and attributes match (its service was checked by :meth:`wants`)."""
        return self.name_matches(span.name) and (not self.attributes or self.attributes_match(span))


class SignalFinder:
    """The signal spans of a trace for a list of selectors (see the module docstring)."""

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

    def find(self, trace: Trace) -> list[Signal]:
        out: list[Signal] = []
        if trace.decoded:
            for g in trace.groups():
                wanted = self._for(g.origin)
                if wanted:
                    for span in g.scope_spans.spans:
                        out.extend(Signal(i, b"", span.span_id, span.start_time_unix_nano, span.end_time_unix_nano,
                                          span) for i in wanted if self.matchers[i].matches(span))
            return out
        by_origin = self._by_origin
        for origin, chunk in trace.chunks.items():
            found = by_origin.get(origin)
            wanted = self._for(origin) if found is None else found
            if wanted:
                self._scan(chunk if type(chunk) is bytes else bytes(chunk), wanted, out)
        return out

    def _scan(self, data: bytes, wanted: tuple[int, ...], out: list[Signal]) -> None:
        matchers = self.matchers
        at: list[int] | None = None
        seen: dict[int, Signal] = {}  # entry -> its signal, when several selectors take one span
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
                        out.extend(Signal(k, b"", span.span_id, span.start_time_unix_nano, span.end_time_unix_nano,
                                          span) for k in wanted if matchers[k].matches(span))
                    return
            candidates: Sequence[int]
            if needle is not None:
                hits: list[int] = []
                while h >= 0:
                    j = bisect_right(at, h) - 1
                    hits.append(j)
                    h = data.find(needle, at[j + 1])
                candidates = hits
            else:
                candidates = range(len(at) - 1)
            for j in candidates:
                prev = seen.get(j)
                if prev is not None:
                    if m.matches(prev.span()):
                        out.append(prev.again(i))
                    continue
                sig = _read(m, data, at[j], at[j + 1], i)
                if sig is not None:
                    seen[j] = sig
                    out.append(sig)


def _read(m: SpanMatcher, data: bytes, i: int, e: int, index: int) -> Signal | None:
    """The span of the entry at ``data[i:e]`` as ``m``'s signal, or None when it is not one. The header is
    read when it is canonical; otherwise, or for attribute matchers, the span is decoded."""
    k = i + 2 if data[i + 1] < 0x80 else i + 3
    if e - k >= 30 and data[k] == 0x0A and data[k + 1] == 0x10 and data[k + 18] == 0x12 and data[k + 19] == 0x08:
        p = k + 28
        if data[p] == 0x1A:
            n, p = read_varint(data, p + 1)
            p += n
        if p < e and data[p] == 0x22:
            p += 2 + data[p + 1]
        if p < e and data[p] == 0x2A:
            n, q = read_varint(data, p + 1)
            name = data[q:q + n]
            q += n
        else:
            name, q = b"", p
        if q < e and data[q] == 0x30:
            q += 2 if data[q + 1] < 0x80 else 3
        if q + 18 <= e and data[q] == 0x39 and data[q + 9] == 0x41 and not m.attributes:
            if m.regex is None:
                if name != m.name_bytes:
                    return None
            else:
                try:
                    if not m.name_matches(name.decode()):
                        return None
                except UnicodeDecodeError:
                    return None
            start, end = _TIMES(data, q + 1)
            return Signal(index, data[k:e], data[k + 20:k + 28], start, end, None)
    span = Span.FromString(data[k:e])
    if not m.matches(span):
        return None
    return Signal(index, b"", span.span_id, span.start_time_unix_nano, span.end_time_unix_nano, span)
