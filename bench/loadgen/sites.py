"""Span templates ("sites"): everything about a span that does not change from trace to trace, serialized
once. A trace only adds ids, times and, for a failing span, the time of its exception event.

A span on the wire is written in canonical field order: ``trace_id`` (1), ``span_id`` (2),
``parent_span_id`` (4), ``name`` (5), ``kind`` (6), start (7) and end (8) as fixed64, ``attributes`` (9),
``events`` (11), ``status`` (15). A site keeps ``mid`` (name and kind) and one ``tail`` (attributes and
status) per variant: ``ok``, ``noise`` (``error=true`` with status OK), ``cascade`` (failed because a
callee failed) and ``origin`` (where the failure starts: it also carries an ``exception`` event).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.wire import encode_varint

Scalar = bool | int | float | str
Protocol = Literal["http", "rpc", "db", "external", "messaging", "internal"]
Variant = Literal["ok", "noise", "cascade"]

KIND_VALUES = {"internal": Span.SPAN_KIND_INTERNAL, "server": Span.SPAN_KIND_SERVER,
               "client": Span.SPAN_KIND_CLIENT, "producer": Span.SPAN_KIND_PRODUCER,
               "consumer": Span.SPAN_KIND_CONSUMER}
_PATH_PARAM_RE = re.compile(r"\{[^}]*\}")


def any_value(value: Scalar) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def key_values(attrs: Mapping[str, Scalar]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def encode_attributes(attrs: Mapping[str, Scalar]) -> bytes:
    """The ``attributes`` entries (field 9) of a span, as they appear inside the span's bytes."""
    return bytes(Span(attributes=key_values(attrs)).SerializeToString())


def example_path(route: str) -> str:
    """``/product/{id}`` -> ``/product/42``: a concrete ``url.path`` for a route template."""
    return _PATH_PARAM_RE.sub("42", route)


def blame_of(kind: str, attrs: Mapping[str, Scalar], service: str) -> str:
    """The root-cause walk's blame (docs/design.md) for a root-cause span with no server child: a CLIENT
    span names its callee by ``peer.service``, else ``server.address``, else ``db.system``; any other span
    blames its own service."""
    if kind == "client":
        for key in ("peer.service", "server.address", "db.system"):
            value = attrs.get(key)
            if value is not None and value != "":
                return str(value)
    return service


class Site:
    """One kind of span (a service's operation, or a call's CLIENT/PRODUCER span) with its variants."""

    __slots__ = ("_tails", "blame", "error_type", "exc_message", "fixed_len", "kind", "kind_value", "mid", "ok_tail",
                 "protocol", "role_attrs", "service", "span_name")

    def __init__(self, service: str, span_name: str, kind: str, protocol: Protocol,
                 attrs: Mapping[str, Scalar], *, error_type: str, exc_message: str, blame: str | None = None) -> None:
        self.service = service            # the emitting service ("" for call sites shared by callers)
        self.span_name = span_name
        self.kind = kind
        self.kind_value = KIND_VALUES[kind]
        self.protocol = protocol
        self.role_attrs = dict(attrs)
        self.error_type = error_type      # default exception type when this span is where a failure starts
        self.exc_message = exc_message
        self.blame = blame if blame is not None else blame_of(kind, attrs, service)
        self.mid = Span(name=span_name, kind=self.kind_value).SerializeToString()
        self.fixed_len = 46 + len(self.mid)  # trace id 18, span id 10, mid, times 18 (+10 with a parent)
        self._tails: dict[tuple[str, str, str, bool], tuple[bytes, bytes, bytes, bytes]] = {}
        self.ok_tail = self.tail("ok")

    def tail(self, variant: Variant, *, via_attribute: bool = False) -> bytes:
        """Attributes and status for ``variant`` (no event)."""
        head, _, _, status = self._parts(variant, "", "", via_attribute)
        return head + status

    def origin_parts(self, error_type: str, message: str, via_attribute: bool) -> tuple[bytes, bytes, bytes, bytes]:
        """(attributes, event head, event rest, status) for a span where a failure starts. The event goes
        between attributes and status: head (``0x5A len 0x09``), its time as fixed64, then rest."""
        return self._parts("origin", error_type or self.error_type, message or self.exc_message, via_attribute)

    def _parts(self, variant: str, error_type: str, message: str,
               via_attribute: bool) -> tuple[bytes, bytes, bytes, bytes]:
        key = (variant, error_type, message, via_attribute)
        cached = self._tails.get(key)
        if cached is not None:
            return cached
        attrs = dict(self.role_attrs)
        status = b""
        ev_head = ev_rest = b""
        if variant == "noise":
            attrs["error"] = True
            status = Span(status=Status(code=Status.STATUS_CODE_OK)).SerializeToString()
        elif variant in ("cascade", "origin"):
            attrs.update(self._error_attrs(variant == "origin", error_type))
            if via_attribute:
                attrs["error"] = True
            else:
                status = Span(status=Status(code=Status.STATUS_CODE_ERROR,
                                            message=message if variant == "origin" else "")).SerializeToString()
            if variant == "origin":
                ev_rest = Span.Event(name="exception", attributes=key_values(
                    {"exception.type": error_type, "exception.message": message})).SerializeToString()
                ev_head = b"\x5a" + encode_varint(9 + len(ev_rest)) + b"\x09"  # then the time, then the rest
        parts = (encode_attributes(attrs), ev_head, ev_rest, status)
        self._tails[key] = parts
        return parts

    def _error_attrs(self, origin: bool, error_type: str) -> dict[str, Scalar]:
        a = self.role_attrs
        if self.protocol in ("http", "external"):
            code = 503 if origin and self.protocol == "external" else 500
            return {"http.response.status_code": code, "error.type": str(code)}
        if self.protocol == "rpc":
            code = 13 if origin or self.kind == "client" else 2  # INTERNAL where it starts, UNKNOWN above
            return {"rpc.grpc.status_code": code,
                    "error.type": error_type if origin and self.kind == "server" else ("INTERNAL" if code == 13
                                                                                        else "UNKNOWN")}
        if self.protocol == "db":
            return {"error.type": error_type if origin else "_OTHER"}
        if origin:
            return {"error.type": error_type}
        return {"error.type": "_OTHER"} if "error.type" not in a else {}


def default_error_type(service: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", service) if p) + "Error"
