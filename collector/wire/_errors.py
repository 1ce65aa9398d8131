"""The errors of the wire code."""

from __future__ import annotations


class WireError(ValueError):
    """Bytes that are not a well-formed OTLP trace request."""


class InvalidSpanIds(WireError):
    """A span's ids are invalid (trace id or span id all zero or of the wrong length, parent id neither
    empty nor 8 bytes). Receivers then remove the offending spans with protobuf and report them."""
