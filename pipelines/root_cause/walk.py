"""The root-cause walk (DESIGN.md "The root-cause walk"), as a pure function of a trace.

A span is **in error** when its status is ERROR, or its status is not OK and it has the attribute
``error`` = true (bool, or a string equal to "true" ignoring case). From each signal span in error the
walk follows every child in error; a span in error with no child in error is a root cause. The primary
root cause ended first (ties: deeper first, then span id in byte order); ``Failure.root_causes`` is in
that order, so ``root_causes[0]`` is the primary.

Cost: error-free traces are recognised from their wire bytes without decoding (a span with status ERROR
contains the bytes ``18 02``, a span with an ``error`` attribute the bytes ``error``); only when one of
those occurs are the spans decoded and checked exactly, and only when some span really is in error is
the index built, once per trace for every signal. (Protobuf encoders write tags and small varints in
their one canonical form; a hand-made non-canonical encoding of the status code would be missed.)

Rules for malformed traces (the walk is iterative, with explicit stacks, and visits each span once):

* **Duplicate span ids** are one span (at-least-once delivery re-sends identical spans; Zipkin gives the
  client and server sides of a call one id). The copy that stands for the id is, in trace order, the
  first SERVER copy in error, else the first copy in error, else the first SERVER copy, else the first
  copy (the server side is where the work happened); the others are ignored, also for annotation. A
  span with an empty id is its own span and can be no one's parent.
* **Orphans** (parent id not in the trace) are root spans.
* Each span has one parent, so a trace is a forest plus at most one **cycle** per connected part. The
  walk never enters a span twice: in a cycle of spans in error it stops at the span whose only child in
  error was already walked, and that span is the root cause.
* One walk covers every signal: a signal inside another signal's walk gets the root causes below it
  (depth counted from itself); a signal inside a cycle with no way in is walked from itself.

A root cause of kind CLIENT with no SERVER span below it (a child, or a Zipkin-style SERVER copy with its
id) called something uninstrumented: it blames ``peer.service``, else ``server.address``, else
``db.system``; with none of those, and for every other root cause, the service is the span's
``service.name``.

Paths are ``"service:span name"`` from the signal down to the root cause; every element names the span's
own ``service.name``, also the last one when the root cause blames a callee (``RootCause.service`` names
the callee, ``RootCause.span_service`` the caller). A path longer than ``max_path`` keeps the signal, a
``"... N spans ..."`` marker and the ``max_path - 2`` spans nearest the root cause.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.traces import SpanGroup, Trace
from pipelines.root_cause.model import Failure, RootCause

DEFAULT_SIGNAL = "root"
STATUS_ERROR = Status.STATUS_CODE_ERROR
STATUS_OK = Status.STATUS_CODE_OK
KIND_CLIENT = Span.SPAN_KIND_CLIENT
KIND_SERVER = Span.SPAN_KIND_SERVER
CALLEE_ATTRIBUTES = ("peer.service", "server.address", "db.system")

# Wire-level evidence that a span may be in error: Status.code (field 3, varint) = 2 is always encoded
# as 18 02; an attribute key "error" always contains its UTF-8 bytes.
_ERROR_KEY_BYTES = b"error"


class SignalMatcher:
    """One configured signal: a span matches when every matcher given matches."""

    __slots__ = ("name", "regex", "service", "span_name")

    def __init__(self, name: str, service: str = "", span_name: str = "", span_name_regex: str = "") -> None:
        self.name = name
        self.service = service
        self.span_name = span_name
        self.regex = re.compile(span_name_regex) if span_name_regex else None

    def matches(self, service: str, span_name: str) -> bool:
        if self.service and service != self.service:
            return False
        if self.span_name and span_name != self.span_name:
            return False
        return self.regex is None or self.regex.search(span_name) is not None


class WalkResult(NamedTuple):
    failures: list[Failure]
    signal_spans: list[Span]  # the signal span of each failure (to annotate)
    signals_skipped: int  # signal spans in error beyond max_signals


NO_FAILURES = WalkResult([], [], 0)


def error_attribute(span: Span) -> bool:
    """The span has attribute ``error`` = true (bool or string "true", any case)."""
    for kv in span.attributes:
        if kv.key == "error":
            v = kv.value
            which = v.WhichOneof("value")
            if which == "bool_value":
                return bool(v.bool_value)
            if which == "string_value":
                return bool(v.string_value.lower() == "true")
            return False
    return False


def in_error(span: Span) -> bool:
    code = span.status.code
    return code == STATUS_ERROR or (code != STATUS_OK and error_attribute(span))


def find_failures(
    trace: Trace,
    signals: Sequence[SignalMatcher] = (),
    *,
    max_root_causes: int = 100,
    max_path: int = 64,
    max_signals: int = 100,
) -> WalkResult:
    """Every signal span in error of ``trace`` with its root causes (``signals`` empty: root spans)."""
    # The wire walk on the way in already knows whether an ERROR status or an ``error`` attribute can be
    # there (trace.maybe_error); most traces stop here without being decoded.
    if not trace.maybe_error:
        return NO_FAILURES
    # The hint is exact for ERROR statuses in canonically encoded spans, so a flagged trace nearly always
    # has a span in error: the walk's index is built straight away (with none in error it finds nothing).
    key_maybe = any(_ERROR_KEY_BYTES in chunk for _, chunk in trace.wire_chunks())
    walk = _Walk(trace, trace.groups(), key_maybe, max_root_causes, max(3, max_path))
    if not walk.parent:
        return NO_FAILURES
    return walk.run(signals, max_signals)


class _Walk:
    """The index of one trace (built once) and the walk over it. Nodes are indices into ``spans``."""

    __slots__ = (
        "by_id", "clock", "depth", "err", "err_children", "group", "groups", "leaf_node", "leaf_tin",
        "max_path", "max_rc", "parent", "pred", "server_parents", "spans", "tin", "tout", "trace",
    )

    def __init__(self, trace: Trace, groups: list[SpanGroup], check_attribute: bool, max_rc: int,
                 max_path: int) -> None:
        self.trace = trace
        self.groups = groups
        self.max_rc = max_rc
        self.max_path = max_path
        spans: list[Span] = []
        group: list[int] = []
        err: list[bool] = []
        by_id: dict[bytes, int] = {}
        for gi, g in enumerate(groups):
            for s in g.scope_spans.spans:
                code = s.status.code
                e = code == STATUS_ERROR or (check_attribute and code != STATUS_OK and error_attribute(s))
                sid = s.span_id
                if sid:
                    j = by_id.get(sid)
                    if j is not None:  # duplicate id: one node, see the module docstring
                        if (e, s.kind == KIND_SERVER) > (err[j], spans[j].kind == KIND_SERVER):
                            spans[j], group[j], err[j] = s, gi, e
                        continue
                    by_id[sid] = len(spans)
                spans.append(s)
                group.append(gi)
                err.append(e)
        self.spans, self.group, self.err, self.by_id = spans, group, err, by_id
        self.server_parents: set[bytes] | None = None  # parent ids of SERVER spans, when first needed
        # For each span in error: its parent node (-1: no parent id, or the parent is not in the trace), and
        # the children in error of each span in error (each node sits in its one parent's list).
        parent: dict[int, int] = {}
        err_children: dict[int, list[int]] = {}
        for i, e in enumerate(err):
            if e:
                pid = spans[i].parent_span_id
                p = by_id.get(pid, -1) if pid else -1
                parent[i] = p
                if p >= 0 and err[p]:
                    err_children.setdefault(p, []).append(i)
        self.parent = parent
        self.err_children = err_children
        n = len(spans)
        self.tin = [-1] * n  # discovery time; -1: not walked
        self.tout = [-1] * n  # last discovery time inside the node's walk subtree
        self.depth = [0] * n  # from the start of the walk that reached it
        self.pred = [-1] * n  # the node the walk came from
        self.leaf_tin: list[int] = []  # root causes, in discovery order (sorted by tin)
        self.leaf_node: list[int] = []
        self.clock = 0

    # -- signals -------------------------------------------------------------------------------------

    def run(self, signals: Sequence[SignalMatcher], max_signals: int) -> WalkResult:
        starts = self._signals(signals)
        if not starts:
            return NO_FAILURES
        skipped = max(0, len(starts) - max_signals)
        starts = starts[:max_signals]
        err, tin = self.err, self.tin
        # Walk from every span in error whose parent is not in error: that reaches every signal not
        # inside a cycle of spans in error.
        for i, p in self.parent.items():
            if p < 0 or not err[p]:
                self._dfs(i)
        failures: list[Failure] = []
        signal_spans: list[Span] = []
        for node, name in starts:
            if tin[node] < 0:
                self._dfs(node)  # in a cycle with no way in
            failures.append(self._failure(node, name))
            signal_spans.append(self.spans[node])
        return WalkResult(failures, signal_spans, skipped)

    def _signals(self, signals: Sequence[SignalMatcher]) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        if not signals:
            return [(i, DEFAULT_SIGNAL) for i, p in self.parent.items() if p < 0]
        spans, groups, group = self.spans, self.groups, self.group
        for i in self.parent:
            s = spans[i]
            service = groups[group[i]].origin.service_name
            name = s.name
            for m in signals:
                if m.matches(service, name):
                    out.append((i, m.name))
                    break
        return out

    # -- the walk ------------------------------------------------------------------------------------

    def _dfs(self, start: int) -> None:
        """Depth-first over children in error from ``start``, with an explicit stack."""
        tin, tout, depth, pred = self.tin, self.tout, self.depth, self.pred
        children = self.err_children
        leaf_tin, leaf_node = self.leaf_tin, self.leaf_node
        clock = self.clock
        tin[start] = clock
        clock += 1
        depth[start] = 0
        pred[start] = -1
        stack = [start]
        pos = [0]  # next child to look at, per stack entry
        found = [False]  # whether the entry reached a child in error
        while stack:
            v = stack[-1]
            kids = children.get(v)
            if kids is not None:
                i = pos[-1]
                nk = len(kids)
                while i < nk and tin[kids[i]] >= 0:
                    i += 1
                if i < nk:
                    c = kids[i]
                    pos[-1] = i + 1
                    found[-1] = True
                    tin[c] = clock
                    clock += 1
                    depth[c] = depth[v] + 1
                    pred[c] = v
                    stack.append(c)
                    pos.append(0)
                    found.append(False)
                    continue
            if not found[-1]:
                leaf_tin.append(tin[v])
                leaf_node.append(v)
            tout[v] = clock - 1
            stack.pop()
            pos.pop()
            found.pop()
        self.clock = clock

    # -- results -------------------------------------------------------------------------------------

    def _failure(self, node: int, signal: str) -> Failure:
        lo = bisect_left(self.leaf_tin, self.tin[node])
        hi = bisect_right(self.leaf_tin, self.tout[node])
        leaves = self.leaf_node[lo:hi]
        spans, depth = self.spans, self.depth

        def order(n: int) -> tuple[int, int, bytes]:
            s = spans[n]
            return s.end_time_unix_nano, -depth[n], s.span_id

        chosen = heapq.nsmallest(self.max_rc, leaves, key=order) if len(leaves) > self.max_rc else sorted(
            leaves, key=order)
        causes = tuple(self._root_cause(node, leaf) for leaf in chosen)
        s = spans[node]
        return Failure(
            signal=signal,
            signal_service=self.groups[self.group[node]].origin.service_name,
            signal_span_name=s.name,
            signal_span_id=s.span_id,
            trace_id=self.trace.trace_id,
            primary=causes[0],
            root_causes=causes,
            root_cause_count=len(leaves),
        )

    def _label(self, n: int) -> str:
        return f"{self.groups[self.group[n]].origin.service_name}:{self.spans[n].name}"

    def _path(self, start: int, leaf: int, length: int) -> tuple[str, ...]:
        keep = length if length <= self.max_path else self.max_path - 2
        tail: list[str] = []
        n = leaf
        pred = self.pred
        for _ in range(keep):
            tail.append(self._label(n))
            n = pred[n]
        tail.reverse()
        if keep == length:
            return tuple(tail)
        return (self._label(start), f"... {length - keep - 1} spans ...", *tail)

    def _root_cause(self, start: int, leaf: int) -> RootCause:
        s = self.spans[leaf]
        own = self.groups[self.group[leaf]].origin.service_name
        service, blamed = own, False
        if s.kind == KIND_CLIENT and s.span_id not in self._server_parents():
            callee = _callee(s)
            if callee:
                service, blamed = callee, True
        d = self.depth[leaf] - self.depth[start]
        error_type, error_message = _error_details(s)
        return RootCause(
            service=service,
            span_name=s.name,
            span_id=s.span_id,
            depth=d,
            path=self._path(start, leaf, d + 1),
            end_time_unix_nano=s.end_time_unix_nano,
            span_service=own,
            blamed_callee=blamed,
            error_type=error_type,
            error_message=error_message,
            resource_attributes=self._resource(self.group[leaf]),
        )

    def _server_parents(self) -> set[bytes]:
        if self.server_parents is None:
            # A CLIENT span has a server side when a SERVER span is its child, or shares its id (Zipkin).
            server = [s for g in self.groups for s in g.scope_spans.spans if s.kind == KIND_SERVER]
            self.server_parents = {s.parent_span_id for s in server} | {s.span_id for s in server}
        return self.server_parents

    def _resource(self, gi: int) -> Mapping[str, str]:
        return self.groups[gi].origin.string_attributes()


def _text(v: AnyValue) -> str:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which in ("bool_value", "int_value", "double_value"):
        return str(getattr(v, which))
    return ""


def _callee(span: Span) -> str:
    """``peer.service``, else ``server.address``, else ``db.system`` ("" if none is a non-empty value)."""
    found: dict[str, str] = {}
    for kv in span.attributes:
        if kv.key in CALLEE_ATTRIBUTES:
            found.setdefault(kv.key, _text(kv.value))
    for key in CALLEE_ATTRIBUTES:
        value = found.get(key)
        if value:
            return value
    return ""


def _error_details(span: Span) -> tuple[str, str]:
    """(type, message): the last ``exception`` event's, else the span's ``exception.*`` attributes
    (``error.type`` for the type), else the status message."""
    error_type = message = ""
    for ev in span.events:
        if ev.name == "exception":
            t = m = ""
            for kv in ev.attributes:
                if kv.key == "exception.type":
                    t = _text(kv.value)
                elif kv.key == "exception.message":
                    m = _text(kv.value)
            if t or m:
                error_type, message = t, m
    if not error_type or not message:
        attr_type = attr_error_type = attr_message = ""
        for kv in span.attributes:
            if kv.key == "exception.type":
                attr_type = _text(kv.value)
            elif kv.key == "error.type":
                attr_error_type = _text(kv.value)
            elif kv.key == "exception.message":
                attr_message = _text(kv.value)
        error_type = error_type or attr_type or attr_error_type
        message = message or attr_message
    return error_type, message or span.status.message
