"""The span and resource fields series are labelled with, read from decoded OTLP messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

# Label values as the OTel Collector's connectors write them (the protobuf enum names).
KIND_NAMES = ("SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
              "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER")
STATUS_NAMES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")


def attribute_text(value: AnyValue) -> str:
    """An attribute value as a label value (strings as they are; other types as the Collector's ``AsString``)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which == "array_value":
        return "[" + ",".join(attribute_text(v) for v in value.array_value.values) + "]"
    if which == "kvlist_value":
        return "{" + ",".join(f"{kv.key}:{attribute_text(kv.value)}" for kv in value.kvlist_value.values) + "}"
    return ""


def find_attribute(name: str, *sources: Iterable[KeyValue]) -> str | None:
    """The value of attribute ``name`` in the first source that has it (span attributes, then resource)."""
    for attributes in sources:
        for kv in attributes:
            if kv.key == name:
                return attribute_text(kv.value)
    return None


def service_name(attributes: Sequence[KeyValue]) -> str:
    """``service.name`` of a resource ("" when absent)."""
    for kv in attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return ""
