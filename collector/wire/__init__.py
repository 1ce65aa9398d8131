"""The protobuf wire format of OTLP trace requests, read and written without decoding spans.

This is the one module the rest of the collector uses for wire bytes:

* splitting a request by trace (:func:`split_by_trace`, into :class:`ScopeChunk` and :class:`TraceSpans`,
  with what it works out about errors set by :class:`SplitOptions`), with the walk chosen in one place
  (``_split``): compiled with numba when :func:`load_compiled` has loaded it (the ``jit`` extra;
  ``TRACETRIAGE_JIT=0`` turns it off), else vectorized with numpy for large requests, else in Python;
* the receivers' compiled request check (:func:`certainly_valid`, :func:`certain_span_count`;
  ``TRACETRIAGE_JIT_VALIDATE=0`` leaves it to protobuf);
* a trace's stored span entries (:func:`span_entries`, :func:`entry_span`, :func:`entries_containing`, ...)
  and their headers read in place (:func:`read_span_headers`);
* building a request from stored bytes (:func:`build_request`), and varint and field helpers;
* every span of a request read into columns (:func:`load_column_walk` and the column numbers ``RS`` ...
  ``SPAN_END``): what the span-derived metrics read, compiled.

The implementations live in private modules of this package; none of them imports this one.
"""

from collector.wire._column_layout import (
    END,
    KIND,
    NAME_AT,
    NAME_LEN,
    NCOLS,
    PARENT_AT,
    RS,
    SPAN_AT,
    SPAN_BEGIN,
    SPAN_END,
    START,
    STATUS,
    TRACE_AT,
)
from collector.wire._columns import load_column_walk
from collector.wire._errors import InvalidSpanIds, WireError
from collector.wire._jit import certain_span_count, certainly_valid
from collector.wire._jit import load as load_compiled
from collector.wire._records import ScopeChunk, TraceSpans, trace_spans
from collector.wire._request import build_request, build_request_within
from collector.wire._spans import (
    ERROR_CODE,
    ERROR_KEY,
    OK_CODE,
    entries_containing,
    entries_maybe_in_error,
    entries_with_parent_id,
    entries_with_span_id,
    entry_body,
    entry_end,
    entry_header,
    entry_span,
    read_span_headers,
    span_around_name,
    span_entries,
    span_entry,
    span_name_field,
    span_trace_id,
)
from collector.wire._split import SplitOptions, split_by_trace
from collector.wire._varint import encode_varint, frame, iter_fields, read_field, read_varint

__all__ = [
    "END",
    "ERROR_CODE",
    "ERROR_KEY",
    "KIND",
    "NAME_AT",
    "NAME_LEN",
    "NCOLS",
    "OK_CODE",
    "PARENT_AT",
    "RS",
    "SPAN_AT",
    "SPAN_BEGIN",
    "SPAN_END",
    "START",
    "STATUS",
    "TRACE_AT",
    "InvalidSpanIds",
    "ScopeChunk",
    "SplitOptions",
    "TraceSpans",
    "WireError",
    "build_request",
    "build_request_within",
    "certain_span_count",
    "certainly_valid",
    "encode_varint",
    "entries_containing",
    "entries_maybe_in_error",
    "entries_with_parent_id",
    "entries_with_span_id",
    "entry_body",
    "entry_end",
    "entry_header",
    "entry_span",
    "frame",
    "iter_fields",
    "load_column_walk",
    "load_compiled",
    "read_field",
    "read_span_headers",
    "read_varint",
    "span_around_name",
    "span_entries",
    "span_entry",
    "span_name_field",
    "span_trace_id",
    "split_by_trace",
    "trace_spans",
]
