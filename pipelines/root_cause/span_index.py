"""Every span of one trace indexed for the latency walk: id, parent, kind, start, end and name.

The error walk's index (:class:`pipelines.root_cause.walk._Walk`) reads only the spans that may be in
error; the latency walk needs the shape and the times of the whole trace. :class:`SpanIndex` extends that
index and reuses its machinery: the same framing of each chunk into span entries, decoding a span only on
first use (the signal spans, the blamed span), the same rule for duplicate span ids, the same callee and
path helpers, and the same ``write_back`` that re-encodes just the annotated signal spans in place.

* **From the wire** (the trace is not decoded and every span's header is canonical, as every protobuf
  encoder writes it: see :func:`collector.wire.read_span_headers`): each span's header is read in place;
  no span is decoded. About 2 µs a span.
* **Decoded** otherwise (a header not canonical, a span id that occurs twice, a trace a stage has decoded):
  every span is decoded, and duplicate ids resolved as the error walk does (the SERVER copy in error, the
  copy in error, the SERVER copy, else the first).

A span whose end is before its start lasts zero: its end is taken as its start.
"""

from __future__ import annotations

from collector.model import Trace
from collector.wire import read_span_headers
from pipelines.root_cause.walk import KIND_SERVER, _Walk


class SpanIndex(_Walk):
    """All spans of a trace as parallel lists indexed by node (see the module docstring).

    ``parents[n]`` is the parent node, -1 for a root (no parent id, or the parent is not in the trace);
    ``children`` maps a node to its child nodes (each node sits in its one parent's list; a trace can still
    hold a cycle, e.g. two spans naming each other as parent)."""

    __slots__ = ("children", "ends", "ids", "kinds", "names", "parents", "starts")

    def __init__(self, trace: Trace, max_path: int = 64) -> None:
        super().__init__(trace, 1, max(3, max_path))
        self.ids: list[bytes] = []
        self.parents: list[int] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.kinds: list[int] = []
        self.names: list[bytes] = []  # from the wire: UTF-8 names (decoded: empty, names come from the spans)
        self.children: dict[int, list[int]] = {}

    def build(self) -> None:
        """Index the trace: from the wire when it allows, else from its decoded spans."""
        if self.trace.decoded or not self._from_wire():
            self._from_decoded()
        children: dict[int, list[int]] = {}
        for n, p in enumerate(self.parents):
            if p >= 0:
                kids = children.get(p)
                if kids is None:
                    children[p] = [n]
                else:
                    kids.append(n)
        self.children = children
        count = len(self.ids)
        self.depth = [0] * count
        self.pred = [-1] * count

    def __len__(self) -> int:
        return len(self.ids)

    def name(self, n: int) -> str:
        if self.chunks is not None:
            return self.names[n].decode("utf-8", "replace")
        return self.span(n).name

    def service(self, n: int) -> str:
        return self.origins[self.group[n]].service_name

    def has_server_child(self, n: int) -> bool:
        """Node ``n`` has a SERVER span below it: a child, or (decoded, Zipkin style) a SERVER copy of its id."""
        if self.chunks is not None:  # no shared ids here: only children can be
            kinds = self.kinds
            return any(kinds[c] == KIND_SERVER for c in self.children.get(n, ()))
        return self._has_server_side(n)

    def _label(self, n: int) -> str:  # (the error walk's path helper calls it: names without decoding)
        return f"{self.service(n)}:{self.name(n)}"

    def _from_wire(self) -> bool:
        chunks = self._frame_chunks()
        if chunks is None:
            return False
        ids: list[bytes] = []
        pids: list[bytes] = []
        starts: list[int] = []
        ends: list[int] = []
        kinds: list[int] = []
        names: list[bytes] = []
        for data, at in zip(chunks, self.where, strict=True):
            if not read_span_headers(data, at, ids, pids, names, kinds, starts, ends):
                return False
        ends = [end if end > start else start for start, end in zip(starts, ends, strict=True)]
        by_id = dict(zip(ids, range(len(ids)), strict=True))
        if len(by_id) != len(ids):
            return False  # duplicate span ids: the decoded index resolves them
        self.spans = [None] * len(ids)
        self.by_id = by_id
        self.ids, self.starts, self.ends, self.kinds, self.names = ids, starts, ends, kinds, names
        self.parents = [by_id.get(pid, -1) if pid else -1 for pid in pids]
        return True

    def _from_decoded(self) -> None:
        self.index_decoded()
        spans = [s for s in self.spans if s is not None]
        by_id = self.by_id
        self.ids = [s.span_id for s in spans]
        self.parents = [by_id.get(s.parent_span_id, -1) if s.parent_span_id else -1 for s in spans]
        starts = self.starts = [s.start_time_unix_nano for s in spans]
        self.ends = [max(s.end_time_unix_nano, starts[n]) for n, s in enumerate(spans)]
        self.kinds = [s.kind for s in spans]
        self.names = []
