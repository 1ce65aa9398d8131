"""Config loading (files, env substitution, merge) and typed decoding with key-path errors."""

from collector.config.opaque import NO_SECRET, REDACTED, Opaque, SecretPathURL, SecretURL, redact_url, scrub
from collector.config.schema import (
    ByteSize,
    ConfigError,
    ConfigIssue,
    Decoder,
    Duration,
    SelfDecoding,
    decode,
    field,
)

__all__ = [
    "NO_SECRET", "REDACTED", "ByteSize", "ConfigError", "ConfigIssue", "Decoder", "Duration", "Opaque", "SecretPathURL",
    "SecretURL", "SelfDecoding", "decode", "field", "redact_url", "scrub",
]
