"""Config loading (files, env substitution, merge) and typed decoding with key-path errors."""

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

__all__ = ["ByteSize", "ConfigError", "ConfigIssue", "Decoder", "Duration", "SelfDecoding", "decode", "field"]
