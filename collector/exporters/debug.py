"""The ``debug`` exporter: writes batches to the service log, as the OTel Collector's debug exporter.

``verbosity``: ``basic`` one line per batch with the counts, ``normal`` one line per span (trace id,
span id, name, status), ``detailed`` a full dump of every resource, scope, span, event and link.
``sampling_initial`` / ``sampling_thereafter`` thin the output per second, as zap's sampler: the first
``sampling_initial`` batches of each second are logged, then every ``sampling_thereafter``-th.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.component import Factory, Host, Kind, Settings
from collector.config.schema import field
from collector.consumer import Capabilities
from collector.model import SpanBatch

Verbosity = Literal["basic", "normal", "detailed"]


@dataclass(frozen=True)
class DebugConfig:
    verbosity: Verbosity = "basic"
    sampling_initial: int = field(2, ge=1)
    sampling_thereafter: int = field(1, ge=1)


class _Sampler:
    """Per-second sampler: first ``initial`` events pass, then every ``thereafter``-th."""

    __slots__ = ("_count", "_initial", "_second", "_thereafter")

    def __init__(self, initial: int, thereafter: int) -> None:
        self._initial = initial
        self._thereafter = thereafter
        self._second = -1
        self._count = 0

    def allow(self) -> bool:
        now = int(time.monotonic())
        if now != self._second:
            self._second = now
            self._count = 0
        self._count += 1
        if self._count <= self._initial:
            return True
        return (self._count - self._initial) % self._thereafter == 0


class DebugExporter:
    __slots__ = ("_config", "_logger", "_sampler")

    def __init__(self, settings: Settings, config: DebugConfig) -> None:
        self._config = config
        self._logger = settings.logger
        self._sampler = _Sampler(config.sampling_initial, config.sampling_thereafter)

    def capabilities(self) -> Capabilities:
        return Capabilities()  # reads the batches it is given, never changes them

    async def start(self, host: Host) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def consume_traces(self, batch: SpanBatch) -> None:
        try:
            if self._sampler.allow():
                self._log(batch)
        finally:
            batch.release()

    def _log(self, batch: SpanBatch) -> None:
        request = batch.request
        log = self._logger
        log.info("Traces resource spans: %d, spans: %d", len(request.resource_spans), batch.span_count)
        verbosity = self._config.verbosity
        if verbosity == "normal":
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        log.info("%s", format_span_line(span))
        elif verbosity == "detailed":
            log.info("%s", format_detailed(batch))


def format_span_line(span: Span) -> str:
    status = Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_")
    line = f"{span.trace_id.hex()} {span.span_id.hex()} {span.name} status={status}"
    if span.status.message:
        line += f" ({span.status.message})"
    return line


def format_value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return "Empty()"
    if kind == "string_value":
        return f"Str({value.string_value})"
    if kind == "bool_value":
        return f"Bool({str(value.bool_value).lower()})"
    if kind == "int_value":
        return f"Int({value.int_value})"
    if kind == "double_value":
        return f"Double({value.double_value})"
    if kind == "bytes_value":
        return f"Bytes({value.bytes_value.hex()})"
    if kind == "array_value":
        return "Slice([" + ", ".join(format_value(v) for v in value.array_value.values) + "])"
    entries = ", ".join(f"{kv.key}: {format_value(kv.value)}" for kv in value.kvlist_value.values)
    return "Map({" + entries + "})"


def _attributes(lines: list[str], attrs: Iterable[KeyValue], indent: str = "     ") -> None:
    lines.extend(f"{indent}-> {kv.key}: {format_value(kv.value)}" for kv in attrs)


def format_detailed(batch: SpanBatch) -> str:
    lines: list[str] = []
    for i, rs in enumerate(batch.request.resource_spans):
        lines.append(f"ResourceSpans #{i}")
        lines.append(f"Resource SchemaURL: {rs.schema_url}")
        if rs.resource.attributes:
            lines.append("Resource attributes:")
            _attributes(lines, rs.resource.attributes)
        for j, ss in enumerate(rs.scope_spans):
            lines.append(f"ScopeSpans #{j}")
            lines.append(f"ScopeSpans SchemaURL: {ss.schema_url}")
            lines.append(f"InstrumentationScope {ss.scope.name} {ss.scope.version}".rstrip())
            if ss.scope.attributes:
                lines.append("InstrumentationScope attributes:")
                _attributes(lines, ss.scope.attributes)
            for k, span in enumerate(ss.spans):
                _span(lines, k, span)
    return "\n".join(lines)


def _span(lines: list[str], index: int, span: Span) -> None:
    status = Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_").capitalize()
    kind = Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").capitalize()
    lines.extend((
        f"Span #{index}",
        f"    Trace ID       : {span.trace_id.hex()}",
        f"    Parent ID      : {span.parent_span_id.hex()}",
        f"    ID             : {span.span_id.hex()}",
        f"    Name           : {span.name}",
        f"    Kind           : {kind}",
        f"    Start time     : {_timestamp(span.start_time_unix_nano)}",
        f"    End time       : {_timestamp(span.end_time_unix_nano)}",
        f"    Status code    : {status}",
        f"    Status message : {span.status.message}",
    ))
    if span.trace_state:
        lines.append(f"    TraceState     : {span.trace_state}")
    if span.attributes:
        lines.append("Attributes:")
        _attributes(lines, span.attributes)
    if span.events:
        lines.append("Events:")
        for n, event in enumerate(span.events):
            lines.extend((
                f"SpanEvent #{n}",
                f"     -> Name: {event.name}",
                f"     -> Timestamp: {_timestamp(event.time_unix_nano)}",
                f"     -> DroppedAttributesCount: {event.dropped_attributes_count}",
            ))
            if event.attributes:
                lines.append("     -> Attributes::")
                _attributes(lines, event.attributes, "          ")
    if span.links:
        lines.append("Links:")
        for n, link in enumerate(span.links):
            lines.extend((
                f"SpanLink #{n}",
                f"     -> Trace ID: {link.trace_id.hex()}",
                f"     -> ID: {link.span_id.hex()}",
                f"     -> TraceState: {link.trace_state}",
                f"     -> DroppedAttributesCount: {link.dropped_attributes_count}",
            ))
            if link.attributes:
                lines.append("     -> Attributes::")
                _attributes(lines, link.attributes, "          ")


def _timestamp(nanos: int) -> str:
    if not nanos:
        return "0"
    seconds, rem = divmod(nanos, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{rem:09d} +0000 UTC"


def create(settings: Settings, config: DebugConfig) -> DebugExporter:
    return DebugExporter(settings, config)


factory = Factory("debug", Kind.EXPORTER, DebugConfig, create, description="Logs batches for debugging.")

__all__ = ["DebugConfig", "DebugExporter", "factory", "format_detailed", "format_span_line"]
