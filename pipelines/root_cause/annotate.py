"""``annotate: true``: the primary root cause written on the signal span as ``rootcause.*`` attributes."""

from __future__ import annotations

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pipelines.root_cause.model import ERROR, LATENCY, FailureKind, RootCause

PREFIX = "rootcause."
SERVICE = PREFIX + "service"
SPAN_NAME = PREFIX + "span_name"
SPAN_ID = PREFIX + "span_id"
DEPTH = PREFIX + "depth"
PATH = PREFIX + "path"
KIND = PREFIX + "kind"
SELF_TIME = PREFIX + "self_time_ms"
KEYS = frozenset((SERVICE, SPAN_NAME, SPAN_ID, DEPTH, PATH, KIND, SELF_TIME))


def annotate(span: Span, cause: RootCause, stale: bool = True, kind: FailureKind = ERROR) -> None:
    """Replace the span's ``rootcause.*`` attributes (the keys in :data:`KEYS`) with ``cause``'s:
    ``service``, ``span_name``, ``span_id`` (hex), ``depth``, ``path``, ``kind`` ("error" or "latency"), and
    for a latency cause ``self_time_ms`` (double). ``stale`` False promises the span has none of them (its
    bytes do not contain ``rootcause.``): no search for them."""
    attrs = span.attributes
    if stale:
        for i in range(len(attrs) - 1, -1, -1):
            if attrs[i].key in KEYS:
                del attrs[i]
    # Filled in place: cheaper than building AnyValue messages and copying them in.
    kv = attrs.add()
    kv.key, kv.value.string_value = SERVICE, cause.service
    kv = attrs.add()
    kv.key, kv.value.string_value = SPAN_NAME, cause.span_name
    kv = attrs.add()
    kv.key, kv.value.string_value = SPAN_ID, cause.span_id.hex()
    kv = attrs.add()
    kv.key, kv.value.int_value = DEPTH, cause.depth
    kv = attrs.add()
    kv.key = PATH
    values = kv.value.array_value.values
    for element in cause.path:
        values.add().string_value = element
    kv = attrs.add()
    kv.key, kv.value.string_value = KIND, kind
    if kind == LATENCY:
        kv = attrs.add()
        kv.key, kv.value.double_value = SELF_TIME, cause.self_time_ms
