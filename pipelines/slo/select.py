"""Finding the signal spans of objectives in a trace, from its wire bytes.

Most spans are not signal spans, and most signal spans are measured without being decoded:

* The spans of a trace are grouped by origin (resource and scope). An origin whose ``service.name`` no
  selector asks for is passed over (which selectors an origin can match is remembered per origin, and
  :attr:`SignalFinder.wants` lets the caller pass over a whole trace with a dictionary lookup per origin).
* A selector with ``span_name`` looks for the name's bytes as a span encodes them (field 5: ``2a``, the
  length, the UTF-8 name). When they occur once in the origin's spans (the search from the end meets the
  one from the start) and stand in a canonical header whose framing fits (the entry's tag and length
  before the header, the entry ending where the next one or the chunk does), the span is read from that
  header alone: two byte searches and a few byte reads. Otherwise the framed entries holding the name are
  found by walking the entries, and each one's header is read.
* A selector with ``span_name_regex`` reads the name of every span of the origin.
* The header of a span: ``trace_id``, ``span_id``, ``trace_state``, ``parent_span_id``, ``name``, ``kind``,
  ``start_time_unix_nano``, ``end_time_unix_nano`` come first, in that order, in the canonical encoding
  every OTLP SDK writes. A span whose header is not canonical is decoded instead, and so is a span that an
  attribute matcher must look at. The caller decodes the others only when it needs their status or
  attributes (:meth:`Signal.span`).

A trace whose spans a stage before has decoded (``Trace.decoded``) is read from its decoded spans.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from collector.model import Origin, Trace
from collector.wire import entry_body, entry_end, entry_header, span_around_name, span_entries, span_name_field
from pipelines.slo.model import Selector

MAX_ORIGINS = 4096  # origins whose selectors are remembered; beyond: forgotten and found again
_Single = tuple[int, bytes]


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
        self.needle = span_name_field(self.name) if self.name else None
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

    __slots__ = ("_by_origin", "matchers", "wants")

    def __init__(self, selectors: Sequence[Selector]) -> None:
        self.matchers = tuple(SpanMatcher(s) for s in selectors)
        # Per origin: the selectors that want its service, and (selector, needle) when that is a single
        # selector comparing the name whole and nothing else (the common case: two byte searches).
        self._by_origin: dict[Origin, tuple[tuple[int, ...], _Single | None]] = {}
        # Per origin seen: whether a selector wants its service (absent: not known yet). Read directly by the
        # caller to pass over traces without a signal span cheaply; cleared with _by_origin.
        self.wants: dict[Origin, bool] = {}

    def _for(self, origin: Origin) -> tuple[tuple[int, ...], _Single | None]:
        found = self._by_origin.get(origin)
        if found is None:
            service = origin.service_name
            wanted = tuple(i for i, m in enumerate(self.matchers) if m.wants(service))
            single = None
            if len(wanted) == 1:
                m = self.matchers[wanted[0]]
                if m.needle is not None and not m.attributes:
                    single = (wanted[0], m.needle)
            if len(self._by_origin) >= MAX_ORIGINS:
                self._by_origin.clear()
                self.wants.clear()
            found = self._by_origin[origin] = (wanted, single)
            self.wants[origin] = bool(wanted)
        return found

    def find(self, trace: Trace) -> list[Signal]:
        out: list[Signal] = []
        if trace.decoded:
            for g in trace.groups():
                wanted = self._for(g.origin)[0]
                if wanted:
                    for span in g.scope_spans.spans:
                        out.extend(Signal(i, b"", span.span_id, span.start_time_unix_nano, span.end_time_unix_nano,
                                          span) for i in wanted if self.matchers[i].matches(span))
            return out
        by_origin = self._by_origin
        for origin, chunk in trace.chunks.items():
            plan = by_origin.get(origin)
            wanted, single = self._for(origin) if plan is None else plan
            if not wanted:
                continue
            data = chunk if type(chunk) is bytes else bytes(chunk)
            if single is not None:
                index, needle = single
                h = data.rfind(needle)  # (a trace's entry span tends to be sent last: it ends last)
                if h < 0:
                    continue
                if data.find(needle) == h:
                    sig = _only_signal(data, h, len(needle), index)
                    if sig is not None:
                        out.append(sig)
                        continue
            self._scan(data, wanted, out)
        return out

    def _scan(self, data: bytes, wanted: tuple[int, ...], out: list[Signal]) -> None:
        """The general path: every entry holding a selector's name (or, for a regex, every entry) is read."""
        matchers = self.matchers
        base = len(out)
        seen: dict[int, Signal] = {}  # entry start -> its signal, when several selectors take one span
        for i in wanted:
            m = matchers[i]
            needle = m.needle
            if needle is not None:
                # The entries holding the name's bytes: framed entries are walked from the chunk's start only
                # as far as each hit (a trace's signal span, often its root, tends to come early).
                h = data.find(needle)
                if h < 0:
                    continue
                entries: list[tuple[int, int]] = []
                at = end = 0
                while h >= 0:
                    while end <= h:
                        at = end
                        end = entry_end(data, at)
                        if end < 0:
                            self._decoded(data, wanted, out, base)
                            return
                    entries.append((at, end))
                    h = data.find(needle, end)
            else:
                bounds = span_entries(data)
                if bounds is None:
                    self._decoded(data, wanted, out, base)
                    return
                entries = list(itertools.pairwise(bounds))
            for at, end in entries:
                prev = seen.get(at)
                if prev is not None:
                    if m.matches(prev.span()):
                        out.append(prev.again(i))
                    continue
                sig = _read(m, data, at, end, i)
                if sig is not None:
                    seen[at] = sig
                    out.append(sig)

    def _decoded(self, data: bytes, wanted: tuple[int, ...], out: list[Signal], base: int) -> None:
        """A chunk with a span of 16 KiB or more: decoded whole (what was found in it so far is dropped)."""
        matchers = self.matchers
        del out[base:]
        for span in ScopeSpans.FromString(data).spans:
            out.extend(Signal(k, b"", span.span_id, span.start_time_unix_nano, span.end_time_unix_nano, span)
                       for k in wanted if matchers[k].matches(span))


def _only_signal(data: bytes, h: int, n: int, index: int) -> Signal | None:
    """The span whose name field, the only one in the chunk with the selector's name, is at ``h`` (``n``
    bytes with its tag and length), read from its canonical header when the framing fits; None otherwise
    (the caller takes the general path)."""
    found = span_around_name(data, h, n)
    if found is None:
        return None
    k, end, span_id, start, stop = found
    return Signal(index, data[k:end], span_id, start, stop, None)


def _read(m: SpanMatcher, data: bytes, i: int, e: int, index: int) -> Signal | None:
    """The span of the entry at ``data[i:e]`` as ``m``'s signal, or None when it is not one. The header is
    read when it is canonical; otherwise, or for attribute matchers, the span is decoded."""
    header = entry_header(data, i, e) if not m.attributes else None
    if header is not None:
        k, span_id, name, start, end = header
        if m.regex is None:
            if name != m.name_bytes:
                return None
        else:
            try:
                if not m.name_matches(name.decode()):
                    return None
            except UnicodeDecodeError:
                return None
        return Signal(index, data[k:e], span_id, start, end, None)
    span = Span.FromString(entry_body(data, i, e))
    if not m.matches(span):
        return None
    return Signal(index, b"", span.span_id, span.start_time_unix_nano, span.end_time_unix_nano, span)
