"""The root-cause walk (docs/design.md, "The root-cause walk") over a trace.

A span is **in error** when its status is ERROR, or its status is not OK and it has the attribute
``error`` = true (bool, or a string equal to "true" ignoring case). From each signal span in error the
walk follows every child in error; a span in error with no child in error is a root cause. The primary
root cause ended first (ties: deeper first, then span id in byte order); ``Failure.root_causes`` is in
that order, so ``root_causes[0]`` is the primary.

Cost: error-free traces are recognised from the hint the receiver's wire walk left (``Trace.maybe_error``)
and cost nothing. The others are indexed from their wire bytes: span boundaries and each span's canonical
header are read, only the spans that may be in error (their bytes contain ``18 02``, how Status.code =
ERROR is encoded, or ``error``) are decoded and checked exactly, and the ids of those few are looked up
with byte searches. Traces that do not allow that (a header not canonical, a span in error sharing its
id, many spans that may be in error) are decoded whole; both indexes give the same result (the tests
compare them). The walk records on the trace whether a span has an ERROR status
(``Trace.error_status``), so a ``status_code`` policy after it reads no span; annotation re-encodes only
the signal spans, in place in their chunks.

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
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.model import Origin, Trace
from collector.wire import (
    entries_maybe_in_error,
    entries_with_parent_id,
    entries_with_span_id,
    entry_span,
    span_entries,
    span_entry,
)
from pipelines.root_cause.annotate import PREFIX as ANNOTATION_PREFIX
from pipelines.root_cause.model import Failure, RootCause

DEFAULT_SIGNAL = "root"
STATUS_ERROR = Status.STATUS_CODE_ERROR
STATUS_OK = Status.STATUS_CODE_OK
KIND_CLIENT = Span.SPAN_KIND_CLIENT
KIND_SERVER = Span.SPAN_KIND_SERVER
CALLEE_ATTRIBUTES = ("peer.service", "server.address", "db.system")

# An attribute key "error" always contains its UTF-8 bytes: a trace without them has no ``error`` attribute.
_ERROR_KEY_BYTES = b"error"
_ANNOTATION_BYTES = ANNOTATION_PREFIX.encode()  # in every key annotate writes
# The wire index looks up the ids of each span that may be in error with a search of the trace's bytes:
# with more of them than this, decoding every span and indexing them all costs less.
WIRE_CANDIDATES = 8


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
    signal_spans: list[Span]  # the signal span of each failure (to annotate, then call write_back)
    signals_skipped: int  # signal spans in error beyond max_signals
    walk: _Walk | None = None
    # Per signal span: whether it may already hold ``rootcause.*`` attributes (annotate's ``stale``).
    stale: Sequence[bool] = ()


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
    from_wire: bool = True,
) -> WalkResult:
    """Every signal span in error of ``trace`` with its root causes (``signals`` empty: root spans).

    ``from_wire`` False: index the trace from its decoded spans even when the wire index would do (the
    two give the same result; tests compare them)."""
    # The wire walk on the way in already knows whether an ERROR status or an ``error`` attribute can be
    # there (trace.maybe_error); most traces stop here without being decoded.
    if not trace.maybe_error:
        return NO_FAILURES
    walk = _Walk(trace, max_root_causes, max(3, max_path))
    if from_wire and not trace.decoded and walk.index_wire():
        # Every span with an ERROR status was among the decoded ones: say so, for the stages after.
        trace.error_status = walk.error_status
    else:
        walk.index_decoded()
    if not walk.parent:
        return NO_FAILURES
    return walk.run(signals, max_signals)


def write_back(result: WalkResult) -> None:
    """The signal spans of ``result`` were changed (annotated): have the trace send the changed spans."""
    if result.walk is not None and result.failures:
        result.walk.write_back()


class _Walk:
    """The index of one trace (built once) and the walk over it. Nodes are indices into ``spans``.

    The index comes from the wire bytes when every span's header is canonical and no span id occurs
    twice (:meth:`index_wire`): ids and parent ids are read from each span's first bytes, and only the
    spans that may be in error (their bytes contain ``18 02``, or ``error`` where an attribute may say
    so) are decoded, and checked exactly. Otherwise, or when the trace is decoded already, every span is
    decoded (:meth:`index_decoded`). Both give the same nodes in the same order."""

    __slots__ = (
        "by_id", "chunks", "clock", "depth", "err", "err_children", "error_status", "group", "leaf_node",
        "leaf_tin", "max_path", "max_rc", "origins", "parent", "pred", "raw", "server_parents", "signal_nodes",
        "spans", "tin", "tout", "trace", "where",
    )

    def __init__(self, trace: Trace, max_rc: int, max_path: int) -> None:
        self.trace = trace
        self.max_rc = max_rc
        self.max_path = max_path
        self.origins: list[Origin] = list(trace.chunks)
        self.spans: list[Span | None] = []  # decoded spans (from the wire: the ones that may be in error)
        self.group: list[int] = []  # node -> index into origins
        self.err: list[bool] = []
        self.by_id: dict[bytes, int] = {}
        self.chunks: list[bytes] | None = None  # from the wire: the chunk of each origin,
        self.where: list[list[int]] = []  # and per chunk, where each framed span entry starts, and its end
        self.raw: dict[int, bytes] = {}  # from the wire: the bytes of each decoded span
        self.error_status = False  # from the wire: a decoded span has status ERROR
        self.server_parents: set[bytes] | None = None  # decoded: parent ids and ids of SERVER spans
        self.parent: dict[int, int] = {}
        self.err_children: dict[int, list[int]] = {}
        self.leaf_tin: list[int] = []  # root causes, in discovery order (sorted by tin)
        self.leaf_node: list[int] = []
        self.clock = 0
        self.signal_nodes: list[int] = []  # the signal node of each failure
        self.tin: list[int] = []
        self.tout: list[int] = []
        self.depth: list[int] = []
        self.pred: list[int] = []

    def _frame_chunks(self) -> list[bytes] | None:
        """Frame each chunk of the trace into its span entries (``chunks``, ``where``: per chunk where each
        entry starts and the chunk's end, ``group``: each span's chunk), and return the chunks; None when a
        chunk's framing is not canonical (nothing set)."""
        chunks: list[bytes] = []
        where: list[list[int]] = []
        group: list[int] = []
        for gi, chunk in enumerate(self.trace.chunks.values()):
            data = bytes(chunk)
            at = span_entries(data, canonical=True)
            if at is None:
                return None
            chunks.append(data)
            where.append(at)
            group += [gi] * (len(at) - 1)
        self.chunks, self.where, self.group = chunks, where, group
        return chunks

    def index_wire(self) -> bool:
        """Index from the wire bytes without decoding spans that cannot be in error; False (nothing
        indexed) when a span's header is not canonical or a span in error shares its id or its parent's."""
        chunks = self._frame_chunks()
        if chunks is None:
            return False
        starts = self.where
        total = len(self.group)
        spans: list[Span | None] = [None] * total
        err = [False] * total
        self.spans, self.err = spans, err
        # The spans that may be in error (their bytes contain 18 02, how Status.code = ERROR is encoded, or
        # "error", as an ``error`` attribute's key does) are decoded and checked exactly.
        base = 0
        candidates: list[int] = []
        for gi, data in enumerate(chunks):  # (zip with strict=True costs as much as a search here)
            at = starts[gi]
            candidates.extend(map(base.__add__, entries_maybe_in_error(data, at)))
            base += len(at) - 1
        if len(candidates) > WIRE_CANDIDATES:
            return False
        parent: dict[int, int] = {}
        for node in sorted(set(candidates)) if len(candidates) > 1 else candidates:
            s = self.span(node)
            code = s.status.code
            if code == STATUS_ERROR:
                self.error_status = True
            elif code == STATUS_OK or not error_attribute(s):
                continue
            err[node] = True
            if self._nodes(entries_with_span_id, s.span_id) != [node]:
                return False
            pid = s.parent_span_id
            if pid:
                found = self._nodes(entries_with_span_id, pid)
                if len(found) > 1:
                    return False
                parent[node] = found[0] if found else -1
            else:
                parent[node] = -1
        self._link(parent)
        return True

    def _nodes(self, find: Callable[[bytes, list[int], bytes], list[int]], span_id: bytes) -> list[int]:
        """From the wire: the nodes whose span ``find`` finds with ``span_id`` (its own span id, or its
        parent's: ``entries_with_span_id`` or ``entries_with_parent_id`` of collector.wire)."""
        chunks, where = self.chunks, self.where
        assert chunks is not None
        if len(chunks) == 1:
            return find(chunks[0], where[0], span_id)
        out: list[int] = []
        base = 0
        for gi, data in enumerate(chunks):
            at = where[gi]
            out.extend(map(base.__add__, find(data, at, span_id)))
            base += len(at) - 1
        return out

    def index_decoded(self) -> None:
        """Index from the decoded spans (duplicate ids resolved as the module docstring says)."""
        self.chunks = None  # what index_wire may have begun is replaced
        check_attribute = any(_ERROR_KEY_BYTES in chunk for _, chunk in self.trace.wire_chunks())
        groups = self.trace.groups()
        self.origins = [g.origin for g in groups]
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
        self.spans, self.group, self.err, self.by_id = list(spans), group, err, by_id
        parent: dict[int, int] = {}
        for i, e in enumerate(err):
            if e:
                pid = spans[i].parent_span_id
                parent[i] = by_id.get(pid, -1) if pid else -1
        self._link(parent)

    def _link(self, parent: dict[int, int]) -> None:
        """For each span in error its parent node (-1: no parent id, or the parent is not in the trace), and
        the children in error of each span in error (each node sits in its one parent's list)."""
        err = self.err
        err_children: dict[int, list[int]] = {}
        for i, p in parent.items():
            if p >= 0 and err[p]:
                err_children.setdefault(p, []).append(i)
        self.parent = parent
        self.err_children = err_children
        n = len(err)
        self.tin = [-1] * n  # discovery time; -1: not walked
        self.tout = [-1] * n  # last discovery time inside the node's walk subtree
        self.depth = [0] * n  # from the start of the walk that reached it
        self.pred = [-1] * n  # the node the walk came from

    def span(self, n: int) -> Span:
        """Node ``n``'s span, decoded (from the wire: on first use)."""
        s = self.spans[n]
        if s is None:
            raw = self.raw[n] = self._raw(n)
            s = self.spans[n] = Span.FromString(raw)
        return s

    def write_back(self) -> None:
        """Have the trace send the (annotated) signal spans: re-encode just those spans into their chunks
        when indexed from the wire, else mark the decoded trace modified."""
        chunks = self.chunks
        if chunks is None:
            self.trace.mark_modified()
            return
        changed: dict[int, bytearray] = {}
        for n in sorted(set(self.signal_nodes), reverse=True):  # last first: earlier offsets stay valid
            gi, j = self._locate(n)
            buf = changed.get(gi)
            if buf is None:
                buf = changed[gi] = bytearray(chunks[gi])
            data = self.span(n).SerializeToString()
            at = self.where[gi]
            buf[at[j]:at[j + 1]] = span_entry(data)
        self.trace.replace_chunks({self.origins[gi]: buf for gi, buf in changed.items()})

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
        stale: list[bool] = []
        wire = self.chunks is not None
        for node, name in starts:
            if tin[node] < 0:
                self._dfs(node)  # in a cycle with no way in
            failures.append(self._failure(node, name))
            signal_spans.append(self.span(node))
            stale.append(not wire or self.raw[node].find(_ANNOTATION_BYTES) >= 0)
            self.signal_nodes.append(node)
        return WalkResult(failures, signal_spans, skipped, self, stale)

    def _signals(self, signals: Sequence[SignalMatcher]) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        if not signals:
            return [(i, DEFAULT_SIGNAL) for i, p in self.parent.items() if p < 0]
        origins, group, span = self.origins, self.group, self.span
        for i in self.parent:
            service = origins[group[i]].service_name
            name = span(i).name
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
        if len(leaves) == 1:
            causes: tuple[RootCause, ...] = (self._root_cause(node, leaves[0]),)
        else:
            span, depth = self.span, self.depth

            def order(n: int) -> tuple[int, int, bytes]:
                s = span(n)
                return s.end_time_unix_nano, -depth[n], s.span_id

            chosen = heapq.nsmallest(self.max_rc, leaves, key=order) if len(leaves) > self.max_rc else sorted(
                leaves, key=order)
            causes = tuple(self._root_cause(node, leaf) for leaf in chosen)
        s = self.span(node)
        return Failure(
            signal=signal,
            signal_service=self.origins[self.group[node]].service_name,
            signal_span_name=s.name,
            signal_span_id=s.span_id,
            trace_id=self.trace.trace_id,
            primary=causes[0],
            root_causes=causes,
            root_cause_count=len(leaves),
        )

    def _label(self, n: int) -> str:
        return f"{self.origins[self.group[n]].service_name}:{self.span(n).name}"

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
        s = self.span(leaf)
        own = self.origins[self.group[leaf]].service_name
        service, blamed = own, False
        if s.kind == KIND_CLIENT and not self._has_server_side(leaf):
            callee = _callee(s)
            if callee:
                service, blamed = callee, True
        d = self.depth[leaf] - self.depth[start]
        error_type, error_message = _error_details(s, self.raw[leaf] if self.chunks is not None else None)
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

    def _has_server_side(self, n: int) -> bool:
        """A CLIENT span has a server side when a SERVER span is its child, or shares its id (Zipkin)."""
        sid = self.span(n).span_id
        if self.chunks is not None:  # from the wire: the leaf's id is its own, so only children can be
            return any(self.span(c).kind == KIND_SERVER for c in self._nodes(entries_with_parent_id, sid))
        if self.server_parents is None:
            server = [s for g in self.trace.groups() for s in g.scope_spans.spans if s.kind == KIND_SERVER]
            self.server_parents = {s.parent_span_id for s in server} | {s.span_id for s in server}
        return sid in self.server_parents

    def _locate(self, n: int) -> tuple[int, int]:
        """From the wire: node ``n``'s chunk and its index there."""
        gi = self.group[n]
        for at in self.where[:gi]:
            n -= len(at) - 1
        return gi, n

    def _raw(self, n: int) -> bytes:
        """From the wire: node ``n``'s span bytes."""
        assert self.chunks is not None
        gi, j = self._locate(n)
        return entry_span(self.chunks[gi], self.where[gi], j)

    def _resource(self, gi: int) -> Mapping[str, str]:
        return self.origins[gi].string_attributes()


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


def _error_details(span: Span, raw: bytes | None = None) -> tuple[str, str]:
    """(type, message): the last ``exception`` event's, else the span's ``exception.*`` attributes
    (``error.type`` for the type), else the status message. ``raw``: the span's bytes, when at hand (a
    span without the bytes "exception" and "error.type" has no such event or attribute)."""
    # (find, not ``in``: ``bytes in bytes`` first tries the needle as an int and formats a TypeError)
    if raw is not None and raw.find(b"exception") < 0 and raw.find(b"error.type") < 0:
        return "", span.status.message
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
