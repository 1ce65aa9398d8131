"""The spans a test sees: each span's attributes (its own, its resource's, and Tracetest's ``tracetest.span.*``
pseudo-attributes), its place in the tree, and the trace's spans in Tracetest's order.

Tracetest orders a trace depth first from the root, each span's children by start time; selectors and the
``:first`` / ``:last`` / ``:nth_child(n)`` pseudo-classes count in that order. A trace with several roots (or
spans whose parent is missing) is ordered root by root, by start time. The walk is iterative: a 100,000-deep
chain does not overflow the stack, and a cycle of parents (bad data) is cut where it is found.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.model import Trace

Value = str | int | float | bool

# Tracetest derives tracetest.span.type from the semantic-convention prefix of the span's attribute keys.
# (It takes the first key found in a Go map, so a span with keys of two families is typed by chance there;
# here the order below decides.)
_TYPE_PREFIXES = (("http.", "http"), ("db.", "database"), ("rpc.", "rpc"), ("messaging.", "messaging"),
                  ("faas.", "faas"), ("exception.", "exception"))
_KINDS = {Span.SPAN_KIND_UNSPECIFIED: "unspecified", Span.SPAN_KIND_INTERNAL: "internal",
          Span.SPAN_KIND_SERVER: "server", Span.SPAN_KIND_CLIENT: "client", Span.SPAN_KIND_PRODUCER: "producer",
          Span.SPAN_KIND_CONSUMER: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


_TYPE_RANK = {prefix[:-1]: (i, t) for i, (prefix, t) in enumerate(_TYPE_PREFIXES)}


def span_type(keys: Iterable[str]) -> str:
    """``tracetest.span.type`` for a span with these attribute keys: http, database, rpc, messaging, faas,
    exception or general."""
    best = len(_TYPE_PREFIXES)
    found = "general"
    rank = _TYPE_RANK
    for k in keys:
        hit = rank.get(k.partition(".")[0])
        if hit is not None and hit[0] < best and "." in k:
            best, found = hit
    return found


def any_value(v: AnyValue) -> Value:
    """An OTLP attribute value as a Python scalar: arrays and maps become JSON text, bytes hex (as Tracetest
    turns every value into a string)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which == "array_value":
        return json.dumps([any_value(x) for x in v.array_value.values])
    if which == "kvlist_value":
        return json.dumps({kv.key: any_value(kv.value) for kv in v.kvlist_value.values})
    return ""


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Value]:
    return {kv.key: any_value(kv.value) for kv in kvs}


class TestSpan:
    """One span as a test sees it. ``attrs`` holds the span's own attributes, its resource's (which win when a
    name is in both), ``name``, ``kind`` and the ``tracetest.span.*`` pseudo-attributes; it is built on first
    use. :meth:`get` reads one of them without building ``attrs``: a name, a resource attribute or a
    pseudo-attribute from the span's fields, one of its own attributes found among them without decoding the
    others."""

    __slots__ = ("_attrs", "_own", "_res", "_span", "children", "end", "name", "parent", "parent_id", "service",
                 "span_id", "start")

    __test__ = False  # (not a pytest test class, whatever its name)

    def __init__(self, span: Span, resource_attrs: Mapping[str, Value]) -> None:
        self._span = span
        self._res = resource_attrs
        self._attrs: dict[str, Value] | None = None
        self._own: dict[str, Value] | None = None
        self.span_id: bytes = span.span_id
        self.parent_id: bytes = span.parent_span_id
        self.name: str = span.name
        self.start: int = span.start_time_unix_nano
        self.end: int = span.end_time_unix_nano
        service = resource_attrs.get("service.name", "")
        self.service = service if isinstance(service, str) else str(service)
        self.parent: TestSpan | None = None
        self.children: list[TestSpan] = []

    def get(self, key: str) -> Value | None:
        """One attribute, as ``attrs.get(key)`` would give it (a resource attribute first, as before), without
        building ``attrs``."""
        if key == "name" or key == "tracetest.span.name":
            return self.name
        got = self._res.get(key)
        if got is not None:
            return got
        pseudo = _PSEUDO.get(key)
        if pseudo is not None:
            return pseudo(self)
        own = self._own
        if own is not None:
            return own.get(key)
        # One key: a scan of the keys, from the last (the one that counts when a key is given twice, as in the
        # decoded attributes), costs a fifth to a half of decoding every attribute.
        for kv in reversed(self._span.attributes):
            if kv.key == key:
                return any_value(kv.value)
        return None

    @property
    def own(self) -> dict[str, Value]:
        """The span's own attributes (decoded once)."""
        own = self._own
        if own is None:
            own = self._own = attributes(self._span.attributes)
        return own

    @property
    def attrs(self) -> dict[str, Value]:
        attrs = self._attrs
        if attrs is not None:
            return attrs
        attrs = dict(self.own)
        attrs.update(self._res)  # a resource attribute wins over a span attribute of the same name
        kind = self.kind()
        attrs["name"] = self.name
        attrs["kind"] = kind
        attrs["tracetest.span.name"] = self.name
        for key, pseudo in _PSEUDO.items():  # (tracetest.span.kind first: the order attrs always had)
            if key != "kind":
                attrs[key] = pseudo(self)
        self._attrs = attrs
        return attrs

    def kind(self) -> str:
        return _KINDS.get(self._span.kind, "unspecified")

    def duration(self) -> int:
        return max(0, self.end - self.start) if self.start and self.end else 0

    def status_code(self) -> str:
        return _STATUS.get(self._span.status.code, "unset")

    def status_description(self) -> str:
        return self._span.status.message

    def describe(self) -> str:
        """How a report names the span: ``service: name (span id)``."""
        return f"{self.service or '?'}: {self.name} ({self.span_id.hex()})"

    def __repr__(self) -> str:
        return f"TestSpan({self.describe()})"


class TestTrace:
    """A trace's spans in Tracetest's order, with the trigger's response when a test run fired one.

    ``spans`` are the trace's spans as they came (one per span id); the tree and ``ordered`` are built on first
    use (a selector that picks one span by its attributes needs neither)."""

    __slots__ = ("_ordered", "_rank", "_roots", "response", "spans", "trace_id")

    __test__ = False

    def __init__(self, trace_id: bytes, spans: Sequence[TestSpan], response: Mapping[str, Value] | None = None
                 ) -> None:
        self.trace_id = trace_id
        if response is None:  # a saved trace: the trigger span carries the response
            trig = next((s for s in spans if s.name == TRIGGER_SPAN_NAME and s.service == TRIGGER_SERVICE), None)
            response = {k: v for k, v in trig.attrs.items() if k.startswith("tracetest.response.")} if trig else {}
        self.response: Mapping[str, Value] = response
        by_id: dict[bytes, TestSpan] = {}
        for s in spans:
            by_id.setdefault(s.span_id, s)  # a duplicated span id: the first copy counts
        self.spans: list[TestSpan] = list(by_id.values()) if len(by_id) != len(spans) else list(spans)
        self._ordered: list[TestSpan] | None = None
        self._roots: list[TestSpan] = []
        self._rank: dict[int, int] | None = None

    @property
    def ordered(self) -> list[TestSpan]:
        """Depth first from the roots, children by start time (Tracetest's order)."""
        if self._ordered is None:
            self._build()
        assert self._ordered is not None
        return self._ordered

    @property
    def roots(self) -> list[TestSpan]:
        if self._ordered is None:
            self._build()
        return self._roots

    def rank(self, span: TestSpan) -> int:
        """The span's place in ``ordered``."""
        rank = self._rank
        if rank is None:
            rank = self._rank = {id(s): i for i, s in enumerate(self.ordered)}
        return rank.get(id(span), 0)

    def _build(self) -> None:
        spans = self.spans
        by_id = {s.span_id: s for s in spans}
        roots: list[TestSpan] = []
        for s in spans:
            parent = by_id.get(s.parent_id) if s.parent_id else None
            if parent is None or parent is s:
                roots.append(s)
            else:
                s.parent = parent
                parent.children.append(s)
        order = _start_order
        for s in spans:
            if len(s.children) > 1:
                s.children.sort(key=order)
        roots.sort(key=order)
        ordered: list[TestSpan] = []
        seen: set[int] = set()
        stack = list(reversed(roots))
        while stack:
            s = stack.pop()
            if id(s) in seen:
                continue
            seen.add(id(s))
            ordered.append(s)
            stack.extend(reversed(s.children))
        if len(ordered) < len(spans):  # spans in a cycle of parents, unreachable from any root
            for s in sorted((s for s in spans if id(s) not in seen), key=order):
                s.parent = None
                ordered.append(s)
                seen.add(id(s))
        self._ordered = ordered
        self._roots = roots

    @property
    def root(self) -> TestSpan | None:
        roots = self.roots
        return roots[0] if roots else None

    @classmethod
    def from_trace(cls, trace: Trace, response: Mapping[str, Value] | None = None) -> TestTrace:
        """From a buffered trace (decodes its spans once; resource attributes read once per origin)."""
        spans: list[TestSpan] = []
        for group in trace.groups():
            res = attributes(group.resource.attributes)
            spans.extend(TestSpan(s, res) for s in group.scope_spans.spans)
        return cls(trace.trace_id, spans, response)

    @classmethod
    def from_groups(cls, trace_id: bytes, groups: Iterable[tuple[Mapping[str, Value], Iterable[Span]]]
                    ) -> TestTrace:
        """From spans already decoded, with their resource's attributes."""
        return cls(trace_id, [TestSpan(s, res) for res, spans in groups for s in spans], {})


# The pseudo-attributes (and ``kind``) computed from the span's fields: they win over the span's own attributes of
# the same name (a resource attribute wins over them, as ``TestSpan.get`` reads the resource first).
_PSEUDO: dict[str, Callable[[TestSpan], Value]] = {
    "kind": TestSpan.kind,
    "tracetest.span.kind": TestSpan.kind,
    "tracetest.span.type": lambda s: span_type(s.own),
    "tracetest.span.duration": TestSpan.duration,
    "tracetest.span.start_time": lambda s: s.start,
    "tracetest.span.end_time": lambda s: s.end,
    "tracetest.span.status_code": TestSpan.status_code,
    "tracetest.span.status_description": TestSpan.status_description,
    "tracetest.span.parent_id": lambda s: s.parent_id.hex(),
}


def _start_order(s: TestSpan) -> tuple[int, bytes]:
    return s.start, s.span_id


def group_by_trace(resource_spans: Iterable[Any]) -> dict[bytes, list[TestSpan]]:
    """Spans of decoded ``ResourceSpans`` messages grouped by trace id, in the order first seen."""
    out: dict[bytes, list[TestSpan]] = {}
    for rs in resource_spans:
        res = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.setdefault(bytes(span.trace_id), []).append(TestSpan(span, res))
    return out


TRIGGER_SPAN_NAME = "Tracetest trigger"
TRIGGER_SERVICE = "tracetest"


def trigger_span_proto(trace_id: bytes, span_id: bytes, start: int, end: int, response: Mapping[str, Value]
                       ) -> Span:
    """The span Tracetest adds for the request it fires (``name="Tracetest trigger"``, type general): the parent
    of the system's root span (its id is the parent in the ``traceparent`` sent), with the response as its
    ``tracetest.response.*`` attributes. ``tracetriage test run`` saves it with the trace (``--save-traces``),
    so that ``--traces`` sees what the live run saw."""
    span = Span(trace_id=trace_id, span_id=span_id, name=TRIGGER_SPAN_NAME, kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start, end_time_unix_nano=end)
    for key, value in response.items():
        kv = span.attributes.add(key=key)
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = value
    return span


def trigger_span(trace_id: bytes, span_id: bytes, start: int, end: int, response: Mapping[str, Value]) -> TestSpan:
    return TestSpan(trigger_span_proto(trace_id, span_id, start, end, response), {"service.name": TRIGGER_SERVICE})
