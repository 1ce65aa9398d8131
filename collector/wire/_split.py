"""The split of a request by trace, and the one place that chooses the walk that does it.

An ``ExportTraceServiceRequest`` is ``resource_spans`` entries (field 1); a ``ResourceSpans`` holds
``resource`` (1), ``scope_spans`` (2), ``schema_url`` (3); a ``ScopeSpans`` holds ``scope`` (1),
``spans`` (2), ``schema_url`` (3). The first of these walks that takes the request walks the spans of every
``ScopeSpans`` (the containers are walked here for the last two):

* the compiled walk (:mod:`._jit`, numba), when it is loaded (:func:`~._jit.load`), which walks the
  containers too;
* the vectorized walk (:mod:`._numpy`), for requests of ``MIN_BYTES`` or more;
* the Python walk (:mod:`._python`), which takes any request.

All three give the same chunks (the compiled walk's ``maybe_error`` is exact where the others may say
"maybe" wrongly), and none of them imports this module. Consecutive ``ScopeSpans`` with the same resource and
scope make one chunk (an encoder that writes one ScopeSpans a span would otherwise cost a chunk a span; the
trace buffer and the exporters group spans by resource and scope anyway). What they work out about errors is
set per call (:class:`SplitOptions`), never for the whole process.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from collector.wire._errors import WireError
from collector.wire._jit import ready as compiled_ready
from collector.wire._jit import split_jit
from collector.wire._numpy import split_np
from collector.wire._python import split_scope
from collector.wire._records import ScopeChunk, append_chunk
from collector.wire._varint import iter_fields

# Below this size a request is walked in Python: the array set-up costs more than it saves.
MIN_BYTES = 8192


@dataclass(frozen=True, slots=True)
class SplitOptions:
    """What a split works out about errors, for ``TraceSpans.maybe_error`` (False promises that no span of
    the trace is in error: no ERROR status, wherever the encoder wrote the status, and no ``error`` attribute
    that is true; ``error = false``, ``"false"`` or ``0``, as OpenTracing-style instrumentation writes on
    every span, is not in error). A service builds one from its pipelines and
    hands it to its receivers; the defaults are right for any pipeline.

    ``error_hints``: look for spans that may be in error at all. Only trace stages read the hint, so a
    service without them turns it off and saves work on every request (``maybe_error`` is then True).
    ``error_attribute``: an ``error`` attribute counts too, not only an ERROR status (with ``error_hints``).
    Stages that read that attribute (root_cause) need it, and it costs a pass over every request."""

    error_hints: bool = True
    error_attribute: bool = True


_DEFAULT = SplitOptions()


def split_by_trace(data: bytes, options: SplitOptions = _DEFAULT, *, ids_once: bool = False) -> list[ScopeChunk]:
    """Walk a serialized ``ExportTraceServiceRequest`` and group its framed span entries by trace id,
    per resource and scope, checking every span's ids on the way. Touches each span's first few bytes
    only (or, compiled, each span's top-level fields once).

    Raises :class:`~collector.wire.WireError` for malformed bytes, :class:`~collector.wire.InvalidSpanIds`
    for a span with invalid ids, and nothing else whatever the bytes (the walks read in place and trust
    lengths only after checking them against their container; a read that still runs off the end, or a span
    protobuf cannot decode, is a WireError too).

    ``ids_once``: the caller knows that no span repeats a ``trace_id``, ``span_id`` or ``parent_span_id``
    field (bytes protobuf serialized, or that :func:`~collector.wire.certainly_valid` accepted). Without it
    the walks check that every span's ids are its only ones, as protobuf keeps the last of a repeated field:
    that walks the rest of every span when the compiled walk is not installed."""
    try:
        return _split(data, options, ids_once)
    except (IndexError, struct.error, DecodeError) as e:
        raise WireError(f"malformed request ({type(e).__name__}: {e})") from None


def _split(data: bytes, options: SplitOptions, ids_once: bool) -> list[ScopeChunk]:
    hints = options.error_hints
    keys = hints and options.error_attribute
    if compiled_ready():
        compiled = split_jit(data, hints, keys)
        if compiled is not None:
            return compiled
    scopes: list[tuple[bytes, bytes, int, int, int]] = []
    n = len(data)
    for tag, _, rs_start, rs_end in iter_fields(data, 0, n):
        if tag != 0x0A:
            continue
        resource_parts: list[bytes] = []
        scope_ranges: list[tuple[int, int]] = []
        for t2, f2, s2, e2 in iter_fields(data, rs_start, rs_end):
            if t2 == 0x12:
                scope_ranges.append((s2, e2))
            else:
                resource_parts.append(data[f2:e2])
        resource_fields = b"".join(resource_parts)
        for ss_start, ss_end in scope_ranges:
            head, first = _scope_head(data, ss_start, ss_end)
            scopes.append((resource_fields, head, first, ss_end, ss_start))
    chunks: list[ScopeChunk] = []
    if n >= MIN_BYTES:
        fast = split_np(data, [(r, h, f, e) for r, h, f, e, _ in scopes], hints, keys, ids_once)
        if fast is not None:
            for chunk in fast:
                append_chunk(chunks, chunk)
            return chunks
    for resource_fields, _, _, ss_end, ss_start in scopes:
        chunk = split_scope(data, ss_start, ss_end, resource_fields, hints, keys, ids_once)
        if chunk.by_trace:
            append_chunk(chunks, chunk)
    return chunks


def _scope_head(data: bytes, start: int, end: int) -> tuple[bytes, int]:
    """The framed fields of a ``ScopeSpans`` before its first span, and where that span starts."""
    # The usual: the scope (a short message), then the spans; or the spans at once. (One ScopeSpans a span
    # is common: this runs once a span then.)
    if start < end:
        tag = data[start]
        if tag == 0x12:
            return b"", start
        if tag == 0x0A and start + 1 < end and data[start + 1] < 0x80:
            e = start + 2 + data[start + 1]
            if e < end and data[e] == 0x12:
                return data[start:e], e
    parts: list[bytes] = []
    for tag, field_start, _, field_end in iter_fields(data, start, end):
        if tag == 0x12:
            return b"".join(parts), field_start
        parts.append(data[field_start:field_end])
    return b"".join(parts), end

