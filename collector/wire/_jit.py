"""The compiled walk (numba): the fast path of a split by trace when numba is installed (the ``jit`` extra)
and ``TRACETRIAGE_JIT`` is not ``0``.

One sequential pass over the spans of a request, in compiled code: every span's top-level fields are read
in whatever order they come (not only the canonical order the vectorized walk relies on), its ids are
checked, its times read, and its status code and ``error`` attribute read exactly (an ERROR status anywhere
in the span, not only as its last field; an ``error`` attribute only when it is true, and not when the
status is OK). Consecutive spans of one trace within a ``ScopeSpans`` are merged
into runs; Python then files one run at a time, as with the other walks.

Anything unusual (a group wire type, a non-span field between spans, a time at or above 2**63) returns
None and the caller takes the other walks, which also raise the precise error for invalid ids. The kernel
reads only inside the bounds it is given and checks every length against them, so malformed bytes cannot
make it read out of range.

Cost (measured on the reference request, 500 spans): 65 to 85 µs for the kernel and about 255 µs for the
whole split, against about 460 µs for the vectorized walk. What it costs the process: numba and LLVM,
about 90 to 125 MB of resident memory once compiled. ``TRACETRIAGE_JIT=0`` (or not installing the extra)
keeps numba out of the process.

The receivers' protobuf check has a compiled fast path here too (:func:`certainly_valid`): a walk over
every field of the request, by a table built from the protobuf descriptors, that answers "protobuf is
certain to accept this" or "ask protobuf". It accepts only what is certainly valid (every known field with
its declared wire type, every string ASCII, nesting at most 48 deep), so a request it does not take is
decoded by protobuf as before, which accepts it or names the error. On the reference request it takes
about 130 µs against about 290 µs for ``ExportTraceServiceRequest.FromString``.
``TRACETRIAGE_JIT_VALIDATE=0`` leaves that check to protobuf alone.

The kernels are in :mod:`._kernels` (importing it imports numba), at module level so that numba's on-disk
cache serves every later process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from collector.wire._records import ScopeChunk, TraceSpans, append_chunk
from collector.wire._split_layout import SCOPE_COLUMNS

_log = logging.getLogger(__name__)
ENV = "TRACETRIAGE_JIT"
VALIDATE_ENV = "TRACETRIAGE_JIT_VALIDATE"
# Run columns: start of the run's first framed span, end of its last, where its trace id is, span count,
# whether a span has no parent, earliest start, latest end, whether a span may be in error, the scope's group
# (see _kernels.containers).
_COLUMNS = 9
_MIN_SPAN = 30  # bytes of the smallest framed span the kernel accepts (tag, length, trace id, span id)
_RUNS = 2048  # runs the first call of the kernel has room for (147 KB)
_SCOPE_ROWS = 1024  # ScopeSpans (and other ResourceSpans fields) the first container walk has room for

_kernel: Callable[..., int] | None = None
_containers: Callable[..., int] | None = None
_validator: Callable[[Any, Any, int, int], int] | None = None
_schema: tuple[Any, int, int] | None = None  # request_schema()
_state = "unloaded"  # unloaded | ready | unavailable
_lock = threading.Lock()


def _env_on(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def enabled_by_env() -> bool:
    return _env_on(ENV)


def ready() -> bool:
    """The compiled walk is loaded (:func:`load`)."""
    return _kernel is not None


def load() -> bool:
    """Import numba and compile (or load from numba's cache) the kernel; False when numba is not installed,
    ``TRACETRIAGE_JIT`` is off, or compiling fails (logged once). Safe to call more than once."""
    global _kernel, _containers, _state, _validator, _schema
    if _state != "unloaded":
        return _state == "ready"
    with _lock:
        if _state != "unloaded":
            return _state == "ready"
        if not enabled_by_env():
            _state = "unavailable"
            return False
        try:
            from collector.wire._kernels import check_request as validator
            from collector.wire._kernels import containers, kernel

            # Compile now (or load the cached machine code), not on the first large request.
            # A read-only buffer, as np.frombuffer gives for a request (another type to numba).
            empty = np.frombuffer(bytes(8), dtype=np.uint8)
            scopes = np.zeros((1, SCOPE_COLUMNS), dtype=np.int64)
            containers(empty, scopes, np.zeros((1, 3), dtype=np.int64))
            kernel(empty, scopes[:0], True, True, np.zeros((1, _COLUMNS), dtype=np.int64))
            schema = request_schema()
            validator(np.frombuffer(bytes(2), dtype=np.uint8), *schema)  # compiled (or loaded) now
        except ImportError:
            _state = "unavailable"
            return False
        except Exception as e:  # noqa: BLE001 - any compiler failure: the other walks still work
            _log.warning("the compiled wire walk is off: numba failed (%s: %s)", type(e).__name__, e)
            _state = "unavailable"
            return False
        _kernel, _containers = kernel, containers
        if _env_on(VALIDATE_ENV):
            _validator, _schema = validator, schema
        _state = "ready"
        return True


def request_schema() -> tuple[Any, int, int]:
    """The field table of ``ExportTraceServiceRequest`` for the compiled check, from the descriptors of the
    installed opentelemetry-proto, its width, and the number of the ``Span`` message in it: entry
    ``m * width + f`` is field number ``f`` of message ``m`` (message 0 is the request), its kind in the low
    three bits (0: the message has no such field) and, for a message field, the message it holds above them.
    A field the check does not know how to read is marked so that the check defers to protobuf."""
    from google.protobuf.descriptor import FieldDescriptor as FD
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    import collector.wire._kernels as k  # (imports numba)

    order = [ExportTraceServiceRequest.DESCRIPTOR]
    index = {order[0].full_name: 0}
    at = 0
    while at < len(order):
        for field in order[at].fields:
            m = field.message_type
            if m is not None and m.full_name not in index:
                index[m.full_name] = len(order)
                order.append(m)
        at += 1
    by_type = {
        **dict.fromkeys((FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_SINT32,
                         FD.TYPE_SINT64, FD.TYPE_BOOL, FD.TYPE_ENUM), k.VARINT_FIELD),
        **dict.fromkeys((FD.TYPE_FIXED64, FD.TYPE_SFIXED64, FD.TYPE_DOUBLE), k.FIXED64_FIELD),
        **dict.fromkeys((FD.TYPE_FIXED32, FD.TYPE_SFIXED32, FD.TYPE_FLOAT), k.FIXED32_FIELD),
        FD.TYPE_STRING: k.STRING_FIELD,
        FD.TYPE_BYTES: k.BYTES_FIELD,
        FD.TYPE_MESSAGE: k.MESSAGE_FIELD,
    }
    width = max(f.number for d in order for f in d.fields) + 1
    table = np.zeros(len(order) * width, dtype=np.int64)
    for mi, desc in enumerate(order):
        for field in desc.fields:
            kind = by_type.get(field.type, k.DEFER_FIELD)
            if field.is_repeated and kind not in (k.STRING_FIELD, k.BYTES_FIELD, k.MESSAGE_FIELD):
                kind = k.DEFER_FIELD  # a repeated number may come packed: left to protobuf
            child = index[field.message_type.full_name] if kind == k.MESSAGE_FIELD else 0
            table[mi * width + field.number] = kind | child << 3
    return table, width, index["opentelemetry.proto.trace.v1.Span"]


def certainly_valid(data: bytes) -> bool:
    """True when ``ExportTraceServiceRequest.FromString(data)`` is certain to succeed (the compiled check,
    when loaded); False means only "not certain": decode it with protobuf."""
    return certain_span_count(data) is not None


def certain_span_count(data: bytes) -> int | None:
    """The number of spans in the request ``data`` when the compiled check is certain protobuf accepts it;
    None when it is not certain (or not loaded): decode it with protobuf."""
    validator, schema = _validator, _schema
    if validator is None or schema is None:
        return None
    n = validator(np.frombuffer(data, dtype=np.uint8), schema[0], schema[1], schema[2])
    return None if n < 0 else n


def split_jit(data: bytes, error_hints: bool, error_keys: bool) -> list[ScopeChunk] | None:
    """The chunks of the request ``data``, its containers and spans walked in compiled code, or None when
    the compiled walk is not loaded or does not take this request (the caller then uses the other walks).
    Consecutive ``ScopeSpans`` with the same resource and scope make one chunk (the container walk groups
    those of one ``ResourceSpans``, so that one ScopeSpans a span costs no chunk a span here)."""
    kernel, containers = _kernel, _containers
    if kernel is None or containers is None:
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    # Room for every ScopeSpans and other ResourceSpans field (two bytes each at least); first for the usual.
    most = len(data) // 2 + 2
    rows = min(most, _SCOPE_ROWS)
    scopes = np.empty((rows, SCOPE_COLUMNS), dtype=np.int64)
    others = np.empty((rows, 3), dtype=np.int64)
    ns = containers(arr, scopes, others)
    if ns == -2:
        scopes = np.empty((most, SCOPE_COLUMNS), dtype=np.int64)
        others = np.empty((most, 3), dtype=np.int64)
        ns = containers(arr, scopes, others)
    if ns < 0:
        return None
    if ns == 0:
        return []
    scopes = scopes[:ns]
    # Room for every run a request of this size could hold is 72 bytes per 30 of the request (5 MB for a
    # 2 MB request, which numpy backs with huge pages that the kernel zeroes on first touch): start with
    # room for the usual, and only a request with more runs than that pays a second call.
    most = len(data) // _MIN_SPAN + 1
    runs = np.empty((min(most, _RUNS), _COLUMNS), dtype=np.int64)
    n = kernel(arr, scopes, error_hints, error_keys, runs)
    if n == -2:
        runs = np.empty((most, _COLUMNS), dtype=np.int64)
        n = kernel(arr, scopes, error_hints, error_keys, runs)
    if n < 0:
        return None
    resources: dict[int, list[bytes]] = {}
    for rs, a, b in others[:int(others[-1, 0])].tolist():
        resources.setdefault(rs, []).append(data[a:b])
    chunks: list[ScopeChunk] = []
    group = -1
    by_trace: dict[bytes, TraceSpans] = {}
    spans = 0
    for f, e, t, count, root, lo, hi, err, g in runs[:n].tolist():
        if g != group:
            if group >= 0:
                append_chunk(chunks, _chunk(data, scopes[group], resources, by_trace, spans))
                by_trace = {}
                spans = 0
            group = g
        spans += count
        tid = data[t:t + 16]
        entry = by_trace.get(tid)
        if entry is None:
            entry = by_trace[tid] = TraceSpans()
            entry.entries = [data[f:e]]
            entry.count = count
            entry.has_root = root != 0
            entry.start = lo
            entry.end = hi
            entry.maybe_error = err != 0
            continue
        if lo < entry.start:
            entry.start = lo
        if hi > entry.end:
            entry.end = hi
        entry.entries.append(data[f:e])
        entry.count += count
        if root:
            entry.has_root = True
        if err:
            entry.maybe_error = True
    if group >= 0:
        append_chunk(chunks, _chunk(data, scopes[group], resources, by_trace, spans))
    return chunks


def _chunk(data: bytes, scope: Any, resources: dict[int, list[bytes]], by_trace: dict[bytes, TraceSpans],
           spans: int) -> ScopeChunk:
    rs, start, first, tail, end, _ = scope.tolist()
    scope_fields = data[start:first]
    if tail < end:  # fields after the last span (schema_url)
        scope_fields += data[tail:end]
    parts = resources.get(rs)
    resource_fields = (parts[0] if len(parts) == 1 else b"".join(parts)) if parts else b""
    return ScopeChunk(resource_fields, scope_fields, by_trace, spans)
